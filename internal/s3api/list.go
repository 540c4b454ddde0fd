package s3api

import (
	"encoding/base64"
	"encoding/xml"
	"net/http"
	"net/url"

	"github.com/bulwark/bulwark/internal/objectstore"
)

// listParams reads the parameters the three listings share.
func listParams(rq *request) (maxKeys int, encode func(string) string, err error) {
	if maxKeys, err = intParam(rq, "max-keys", 1000, 1000); err != nil {
		return 0, nil, err
	}
	encode = func(s string) string { return s }
	switch et := rq.query.Get("encoding-type"); et {
	case "":
	case "url":
		encode = url.QueryEscape
	default:
		return 0, nil, apiErr("InvalidArgument", 400, "Invalid Encoding Method specified in Request")
	}
	return maxKeys, encode, nil
}

type object struct {
	Key               string `xml:"Key"`
	LastModified      string `xml:"LastModified"`
	ETag              string `xml:"ETag"`
	ChecksumAlgorithm string `xml:"ChecksumAlgorithm,omitempty"`
	ChecksumType      string `xml:"ChecksumType,omitempty"`
	Size              int64  `xml:"Size"`
	StorageClass      string `xml:"StorageClass"`
	Owner             *owner `xml:"Owner,omitempty"`
}

type commonPrefix struct {
	Prefix string `xml:"Prefix"`
}

func toObject(v *objectstore.Version, enc func(string) string, withOwner bool) object {
	o := object{
		Key: enc(v.Key), LastModified: xmlTime(v.LastModified), ETag: `"` + v.ETag + `"`,
		Size: v.Size, StorageClass: storageClass(v.StorageClass), ChecksumAlgorithm: v.ChecksumAlgorithm,
	}
	if v.ChecksumAlgorithm != "" {
		o.ChecksumType = v.ChecksumKind()
	}
	if withOwner {
		o.Owner = &owner{ID: v.Owner, DisplayName: v.Owner}
	}
	return o
}

func storageClass(s string) string {
	if s == "" {
		return "STANDARD"
	}
	return s
}

func prefixes(cps []string, enc func(string) string) []commonPrefix {
	out := make([]commonPrefix, len(cps))
	for i, p := range cps {
		out[i] = commonPrefix{Prefix: enc(p)}
	}
	return out
}

type listBucketResult struct {
	XMLName        xml.Name       `xml:"ListBucketResult"`
	NS             string         `xml:"xmlns,attr"`
	Name           string         `xml:"Name"`
	Prefix         string         `xml:"Prefix"`
	Marker         string         `xml:"Marker"`
	NextMarker     string         `xml:"NextMarker,omitempty"`
	MaxKeys        int            `xml:"MaxKeys"`
	Delimiter      string         `xml:"Delimiter,omitempty"`
	IsTruncated    bool           `xml:"IsTruncated"`
	EncodingType   string         `xml:"EncodingType,omitempty"`
	Contents       []object       `xml:"Contents"`
	CommonPrefixes []commonPrefix `xml:"CommonPrefixes"`
}

func (h *Handler) listObjects(w http.ResponseWriter, r *http.Request, rq *request) error {
	maxKeys, enc, err := listParams(rq)
	if err != nil {
		return err
	}
	q := rq.query
	res, err := h.store.ListObjects(r.Context(), rq.bucket, objectstore.ListInput{
		Prefix: q.Get("prefix"), Delimiter: q.Get("delimiter"), After: q.Get("marker"), MaxKeys: maxKeys,
	})
	if err != nil {
		return err
	}
	out := listBucketResult{
		NS: xmlNS, Name: rq.bucket, Prefix: enc(q.Get("prefix")), Marker: enc(q.Get("marker")),
		MaxKeys: maxKeys, Delimiter: enc(q.Get("delimiter")), IsTruncated: res.IsTruncated,
		EncodingType: q.Get("encoding-type"), CommonPrefixes: prefixes(res.CommonPrefixes, enc),
	}
	// S3 returns NextMarker only with a delimiter; without one, clients
	// continue from the last key.
	if res.IsTruncated && q.Get("delimiter") != "" {
		out.NextMarker = enc(res.Next)
	}
	for _, v := range res.Objects {
		out.Contents = append(out.Contents, toObject(v, enc, true))
	}
	writeXML(w, http.StatusOK, out)
	return nil
}

type listBucketResultV2 struct {
	XMLName               xml.Name       `xml:"ListBucketResult"`
	NS                    string         `xml:"xmlns,attr"`
	Name                  string         `xml:"Name"`
	Prefix                string         `xml:"Prefix"`
	MaxKeys               int            `xml:"MaxKeys"`
	KeyCount              int            `xml:"KeyCount"`
	Delimiter             string         `xml:"Delimiter,omitempty"`
	IsTruncated           bool           `xml:"IsTruncated"`
	EncodingType          string         `xml:"EncodingType,omitempty"`
	ContinuationToken     string         `xml:"ContinuationToken,omitempty"`
	NextContinuationToken string         `xml:"NextContinuationToken,omitempty"`
	StartAfter            string         `xml:"StartAfter,omitempty"`
	Contents              []object       `xml:"Contents"`
	CommonPrefixes        []commonPrefix `xml:"CommonPrefixes"`
}

// Continuation tokens are the last key or prefix returned, opaque to clients.
func encodeToken(s string) string { return base64.RawURLEncoding.EncodeToString([]byte("1:" + s)) }

func decodeToken(tok string) (string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) < 2 || string(b[:2]) != "1:" {
		return "", false
	}
	return string(b[2:]), true
}

func (h *Handler) listObjectsV2(w http.ResponseWriter, r *http.Request, rq *request) error {
	maxKeys, enc, err := listParams(rq)
	if err != nil {
		return err
	}
	q := rq.query
	after := q.Get("start-after")
	if q.Has("continuation-token") {
		tok, ok := decodeToken(q.Get("continuation-token"))
		if !ok {
			return apiErr("InvalidArgument", 400, "The continuation token provided is incorrect")
		}
		after = tok
	}
	res, err := h.store.ListObjects(r.Context(), rq.bucket, objectstore.ListInput{
		Prefix: q.Get("prefix"), Delimiter: q.Get("delimiter"), After: after, MaxKeys: maxKeys,
	})
	if err != nil {
		return err
	}
	out := listBucketResultV2{
		NS: xmlNS, Name: rq.bucket, Prefix: enc(q.Get("prefix")), MaxKeys: maxKeys,
		Delimiter: enc(q.Get("delimiter")), IsTruncated: res.IsTruncated, EncodingType: q.Get("encoding-type"),
		ContinuationToken: q.Get("continuation-token"), StartAfter: enc(q.Get("start-after")),
		CommonPrefixes: prefixes(res.CommonPrefixes, enc),
		KeyCount:       len(res.Objects) + len(res.CommonPrefixes),
	}
	if res.IsTruncated {
		out.NextContinuationToken = encodeToken(res.Next)
	}
	fetchOwner := q.Get("fetch-owner") == "true"
	for _, v := range res.Objects {
		out.Contents = append(out.Contents, toObject(v, enc, fetchOwner))
	}
	writeXML(w, http.StatusOK, out)
	return nil
}

type versionEntry struct {
	XMLName           xml.Name
	Key               string `xml:"Key"`
	VersionID         string `xml:"VersionId"`
	IsLatest          bool   `xml:"IsLatest"`
	LastModified      string `xml:"LastModified"`
	ETag              string `xml:"ETag,omitempty"`
	ChecksumAlgorithm string `xml:"ChecksumAlgorithm,omitempty"`
	ChecksumType      string `xml:"ChecksumType,omitempty"`
	Size              *int64 `xml:"Size,omitempty"`
	StorageClass      string `xml:"StorageClass,omitempty"`
	Owner             owner  `xml:"Owner"`
}

type listVersionsResult struct {
	XMLName             xml.Name       `xml:"ListVersionsResult"`
	NS                  string         `xml:"xmlns,attr"`
	Name                string         `xml:"Name"`
	Prefix              string         `xml:"Prefix"`
	KeyMarker           string         `xml:"KeyMarker"`
	VersionIDMarker     string         `xml:"VersionIdMarker"`
	NextKeyMarker       string         `xml:"NextKeyMarker,omitempty"`
	NextVersionIDMarker string         `xml:"NextVersionIdMarker,omitempty"`
	MaxKeys             int            `xml:"MaxKeys"`
	Delimiter           string         `xml:"Delimiter,omitempty"`
	IsTruncated         bool           `xml:"IsTruncated"`
	EncodingType        string         `xml:"EncodingType,omitempty"`
	Entries             []versionEntry // Version and DeleteMarker elements, in order
	CommonPrefixes      []commonPrefix `xml:"CommonPrefixes"`
}

func (h *Handler) listObjectVersions(w http.ResponseWriter, r *http.Request, rq *request) error {
	maxKeys, enc, err := listParams(rq)
	if err != nil {
		return err
	}
	q := rq.query
	res, err := h.store.ListVersions(r.Context(), rq.bucket, objectstore.ListVersionsInput{
		Prefix: q.Get("prefix"), Delimiter: q.Get("delimiter"),
		KeyMarker: q.Get("key-marker"), VersionIDMarker: q.Get("version-id-marker"), MaxKeys: maxKeys,
	})
	if err != nil {
		return err
	}
	out := listVersionsResult{
		NS: xmlNS, Name: rq.bucket, Prefix: enc(q.Get("prefix")), KeyMarker: enc(q.Get("key-marker")),
		VersionIDMarker: q.Get("version-id-marker"), MaxKeys: maxKeys, Delimiter: enc(q.Get("delimiter")),
		IsTruncated: res.IsTruncated, EncodingType: q.Get("encoding-type"),
		CommonPrefixes: prefixes(res.CommonPrefixes, enc),
	}
	if res.IsTruncated {
		out.NextKeyMarker, out.NextVersionIDMarker = enc(res.NextKeyMarker), res.NextVersionIDMarker
	}
	for _, v := range res.Versions {
		e := versionEntry{
			Key: enc(v.Key), VersionID: v.VersionID, IsLatest: v.IsLatest,
			LastModified: xmlTime(v.LastModified), Owner: owner{ID: v.Owner, DisplayName: v.Owner},
		}
		if v.DeleteMarker {
			e.XMLName.Local = "DeleteMarker"
		} else {
			size := v.Size
			e.XMLName.Local = "Version"
			e.ETag, e.Size, e.StorageClass = `"`+v.ETag+`"`, &size, storageClass(v.StorageClass)
			e.ChecksumAlgorithm = v.ChecksumAlgorithm
			if v.ChecksumAlgorithm != "" {
				e.ChecksumType = v.ChecksumKind()
			}
		}
		out.Entries = append(out.Entries, e)
	}
	writeXML(w, http.StatusOK, out)
	return nil
}
