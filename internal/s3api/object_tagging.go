package s3api

import (
	"encoding/xml"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/bulwark/bulwark/internal/objectstore"
)

// tagging is the document of the tagging calls, for objects and buckets.
// Key and Value are pointers so that a missing element, which S3's schema
// forbids, can be told from an empty one.
type tagging struct {
	XMLName xml.Name `xml:"Tagging"`
	NS      string   `xml:"xmlns,attr,omitempty"`
	TagSet  *tagSet  `xml:"TagSet"`
}

type tagSet struct {
	Tags []tagXML `xml:"Tag"`
}

type tagXML struct {
	Key   *string `xml:"Key"`
	Value *string `xml:"Value"`
}

// tagMap validates the document's tag set, of at most limit tags.
func (t *tagging) tagMap(limit int) (map[string]string, error) {
	if t.TagSet == nil {
		return nil, errMalformedXML
	}
	list := make([]objectstore.Tag, 0, len(t.TagSet.Tags))
	for _, tag := range t.TagSet.Tags {
		if tag.Key == nil || tag.Value == nil {
			return nil, errMalformedXML
		}
		list = append(list, objectstore.Tag{Key: *tag.Key, Value: *tag.Value})
	}
	return objectstore.TagMap(list, limit)
}

// taggingDoc renders a tag set, by key as S3 returns it.
func taggingDoc(tags map[string]string) tagging {
	doc := tagging{NS: xmlNS, TagSet: &tagSet{Tags: []tagXML{}}}
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		v := tags[k]
		doc.TagSet.Tags = append(doc.TagSet.Tags, tagXML{Key: &k, Value: &v})
	}
	return doc
}

var errInvalidTaggingHeader = apiErr("InvalidArgument", 400, "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates.")

// taggingHeader reads the tag set of a new object from x-amz-tagging, a URL
// query string of distinct keys. A presigned URL carries it in the query.
func taggingHeader(r *http.Request, rq *request) (map[string]string, error) {
	raw := r.Header.Get("x-amz-tagging")
	if raw == "" {
		raw = rq.query.Get("x-amz-tagging")
	}
	if raw == "" {
		return nil, nil
	}
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return nil, errInvalidTaggingHeader
	}
	for part := range strings.SplitSeq(raw, "&") {
		if strings.Count(part, "=") > 1 {
			return nil, errInvalidTaggingHeader
		}
	}
	list := make([]objectstore.Tag, 0, len(vals))
	for k, vs := range vals {
		if len(vs) != 1 {
			return nil, errInvalidTaggingHeader
		}
		list = append(list, objectstore.Tag{Key: k, Value: vs[0]})
	}
	return objectstore.TagMap(list, objectstore.MaxObjectTags)
}

// versionIDParam returns the versionId query parameter; present but empty
// is refused, as S3 does.
func versionIDParam(rq *request) (string, error) {
	vid := rq.query.Get("versionId")
	if rq.query.Has("versionId") && vid == "" {
		return "", apiErr("InvalidArgument", 400, "Version id cannot be the empty string")
	}
	return vid, nil
}

// setVersionHeader names the version a call acted on, where S3 shows it:
// always in a bucket that has had versioning, never for the null version
// of one that has not.
func setVersionHeader(w http.ResponseWriter, v *objectstore.Version) {
	if !v.Null || v.BucketVersioned {
		w.Header().Set("x-amz-version-id", v.VersionID)
	}
}

func (h *Handler) putObjectTagging(w http.ResponseWriter, r *http.Request, rq *request) error {
	vid, err := versionIDParam(rq)
	if err != nil {
		return err
	}
	var doc tagging
	if err := decodeVerifiedXML(r, rq, &doc, maxXMLBody); err != nil {
		return err
	}
	tags, err := doc.tagMap(objectstore.MaxObjectTags)
	if err != nil {
		return err
	}
	v, err := h.store.SetTags(r.Context(), rq.bucket, rq.key, vid, tags)
	if err != nil {
		return err
	}
	setVersionHeader(w, v)
	w.WriteHeader(http.StatusOK)
	return nil
}

func (h *Handler) getObjectTagging(w http.ResponseWriter, r *http.Request, rq *request) error {
	vid, err := versionIDParam(rq)
	if err != nil {
		return err
	}
	v, err := h.store.HeadObject(r.Context(), rq.bucket, rq.key, vid)
	if err != nil {
		return err
	}
	setVersionHeader(w, v)
	writeXML(w, http.StatusOK, taggingDoc(v.Tags))
	return nil
}

func (h *Handler) deleteObjectTagging(w http.ResponseWriter, r *http.Request, rq *request) error {
	vid, err := versionIDParam(rq)
	if err != nil {
		return err
	}
	v, err := h.store.SetTags(r.Context(), rq.bucket, rq.key, vid, nil)
	if err != nil {
		return err
	}
	setVersionHeader(w, v)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
