package s3api

import (
	"encoding/xml"
	"net/http"
	"strings"

	"github.com/bulwark/bulwark/internal/objectstore"
)

// The attributes GetObjectAttributes can be asked for.
const (
	attrETag         = "ETag"
	attrChecksum     = "Checksum"
	attrObjectParts  = "ObjectParts"
	attrStorageClass = "StorageClass"
	attrObjectSize   = "ObjectSize"
)

type objectAttributesResult struct {
	XMLName      xml.Name      `xml:"GetObjectAttributesResponse"`
	NS           string        `xml:"xmlns,attr"`
	ETag         string        `xml:"ETag,omitempty"`
	Checksum     *checksumAttr `xml:"Checksum"`
	ObjectParts  *partsAttr    `xml:"ObjectParts"`
	StorageClass string        `xml:"StorageClass,omitempty"`
	ObjectSize   *int64        `xml:"ObjectSize"`
}

type checksumAttr struct {
	checksumFields
	ChecksumType string `xml:"ChecksumType"`
}

type partsAttr struct {
	PartsCount           int        `xml:"PartsCount"`
	PartNumberMarker     int        `xml:"PartNumberMarker"`
	NextPartNumberMarker int        `xml:"NextPartNumberMarker,omitempty"`
	MaxParts             int        `xml:"MaxParts"`
	IsTruncated          bool       `xml:"IsTruncated"`
	Parts                []partAttr `xml:"Part"`
}

type partAttr struct {
	PartNumber int   `xml:"PartNumber"`
	Size       int64 `xml:"Size"`
	checksumFields
}

// objectAttributes reads x-amz-object-attributes: a comma-separated list,
// possibly over several header lines, of the attributes to return.
func objectAttributes(r *http.Request) (map[string]bool, error) {
	want := map[string]bool{}
	for _, line := range r.Header.Values("x-amz-object-attributes") {
		for name := range strings.SplitSeq(line, ",") {
			switch name = strings.TrimSpace(name); name {
			case "":
			case attrETag, attrChecksum, attrObjectParts, attrStorageClass, attrObjectSize:
				want[name] = true
			default:
				return nil, apiErr("InvalidArgument", 400, "Invalid attribute name specified.")
			}
		}
	}
	if len(want) == 0 {
		return nil, apiErr("InvalidArgument", 400, "The x-amz-object-attributes header specifying the attributes to be retrieved is either missing or empty")
	}
	return want, nil
}

func (h *Handler) getObjectAttributes(w http.ResponseWriter, r *http.Request, rq *request) error {
	want, err := objectAttributes(r)
	if err != nil {
		return err
	}
	vid, err := versionIDParam(rq)
	if err != nil {
		return err
	}
	maxParts, err := parseIntParam("x-amz-max-parts", r.Header.Get("x-amz-max-parts"), 1000, 1000)
	if err != nil {
		return err
	}
	marker, err := parseIntParam("x-amz-part-number-marker", r.Header.Get("x-amz-part-number-marker"), 0, objectstore.MaxParts)
	if err != nil {
		return err
	}
	v, err := h.store.HeadObject(r.Context(), rq.bucket, rq.key, vid)
	if err != nil {
		return err
	}
	res := objectAttributesResult{NS: xmlNS}
	if want[attrETag] {
		res.ETag = v.ETag
	}
	if want[attrChecksum] && v.ChecksumAlgorithm != "" {
		// The checksum of a COMPOSITE object goes without the "-N" part
		// count that HeadObject shows, as in S3.
		value, _, _ := strings.Cut(v.Checksum, "-")
		res.Checksum = &checksumAttr{ChecksumType: v.ChecksumKind()}
		res.Checksum.set(v.ChecksumAlgorithm, value)
	}
	if want[attrObjectParts] && len(v.Parts) > 0 {
		res.ObjectParts = objectParts(v, marker, min(maxParts, 1000))
	}
	if want[attrStorageClass] {
		res.StorageClass = storageClass(v.StorageClass)
	}
	if want[attrObjectSize] {
		res.ObjectSize = &v.Size
	}
	w.Header().Set("Last-Modified", v.LastModified.UTC().Format(http.TimeFormat))
	setVersionHeader(w, v)
	writeXML(w, http.StatusOK, res)
	return nil
}

// objectParts pages through a multipart object's parts as ListParts pages
// through an upload's. As in S3, the parts themselves are listed only for
// an object whose checksum is composed from theirs; otherwise the answer
// carries their count and the paging fields alone.
func objectParts(v *objectstore.Version, marker, max int) *partsAttr {
	out := &partsAttr{PartsCount: len(v.Parts), PartNumberMarker: marker, MaxParts: max}
	listed := v.ChecksumAlgorithm != "" && v.ChecksumKind() == objectstore.ChecksumTypeComposite
	n := 0
	for _, p := range v.Parts {
		if p.Number <= marker {
			continue
		}
		if n == max {
			out.IsTruncated = true
			break
		}
		n++
		out.NextPartNumberMarker = p.Number
		if listed {
			e := partAttr{PartNumber: p.Number, Size: p.Size}
			e.set(v.ChecksumAlgorithm, p.Checksum)
			out.Parts = append(out.Parts, e)
		}
	}
	if !out.IsTruncated {
		out.NextPartNumberMarker = 0
	}
	return out
}
