package s3api

import (
	"encoding/xml"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/bulwark/bulwark/internal/checksum"
	"github.com/bulwark/bulwark/internal/objectstore"
)

// checksumFields are the XML elements S3 uses for a checksum, one per
// algorithm; at most one is set.
type checksumFields struct {
	ChecksumCRC32     string `xml:"ChecksumCRC32,omitempty"`
	ChecksumCRC32C    string `xml:"ChecksumCRC32C,omitempty"`
	ChecksumCRC64NVME string `xml:"ChecksumCRC64NVME,omitempty"`
	ChecksumSHA1      string `xml:"ChecksumSHA1,omitempty"`
	ChecksumSHA256    string `xml:"ChecksumSHA256,omitempty"`
}

func (c *checksumFields) set(alg, value string) {
	switch checksum.Algorithm(alg) {
	case checksum.CRC32:
		c.ChecksumCRC32 = value
	case checksum.CRC32C:
		c.ChecksumCRC32C = value
	case checksum.CRC64NVME:
		c.ChecksumCRC64NVME = value
	case checksum.SHA1:
		c.ChecksumSHA1 = value
	case checksum.SHA256:
		c.ChecksumSHA256 = value
	}
}

func (c *checksumFields) get(alg string) string {
	switch checksum.Algorithm(alg) {
	case checksum.CRC32:
		return c.ChecksumCRC32
	case checksum.CRC32C:
		return c.ChecksumCRC32C
	case checksum.CRC64NVME:
		return c.ChecksumCRC64NVME
	case checksum.SHA1:
		return c.ChecksumSHA1
	case checksum.SHA256:
		return c.ChecksumSHA256
	}
	return ""
}

type initiateResult struct {
	XMLName  xml.Name `xml:"InitiateMultipartUploadResult"`
	NS       string   `xml:"xmlns,attr"`
	Bucket   string   `xml:"Bucket"`
	Key      string   `xml:"Key"`
	UploadID string   `xml:"UploadId"`
}

func (h *Handler) createMultipartUpload(w http.ResponseWriter, r *http.Request, rq *request) error {
	if err := h.refuseACLHeaders(r, rq); err != nil {
		return err
	}
	in := &objectstore.UploadInput{Bucket: rq.bucket, Key: rq.key, Owner: rq.principal.AccountID}
	tmpl, err := objectTemplate(r)
	if err != nil {
		return err
	}
	in.Template = *tmpl
	if in.Template.Tags, err = taggingHeader(r, rq); err != nil {
		return err
	}
	if s := r.Header.Get("x-amz-checksum-algorithm"); s != "" {
		alg, err := checksum.ParseAlgorithm(s)
		if err != nil {
			return apiErr("InvalidRequest", 400, "Checksum algorithm provided is unsupported. Please try again with any of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]")
		}
		in.ChecksumAlgorithm = alg
	}
	in.ChecksumType = r.Header.Get("x-amz-checksum-type")
	u, err := h.store.CreateUpload(r.Context(), in)
	if err != nil {
		return err
	}
	if u.ChecksumAlgorithm != "" {
		w.Header().Set("x-amz-checksum-algorithm", u.ChecksumAlgorithm)
		w.Header().Set("x-amz-checksum-type", u.ChecksumType)
	}
	writeXML(w, http.StatusOK, initiateResult{NS: xmlNS, Bucket: rq.bucket, Key: rq.key, UploadID: u.UploadID})
	return nil
}

// objectTemplate reads the headers that describe an object to be: content
// headers, user metadata, storage class.
func objectTemplate(r *http.Request) (*objectstore.Version, error) {
	v := &objectstore.Version{
		ContentType:        r.Header.Get("Content-Type"),
		ContentEncoding:    storedContentEncoding(r.Header.Get("Content-Encoding")),
		ContentDisposition: r.Header.Get("Content-Disposition"),
		ContentLanguage:    r.Header.Get("Content-Language"),
		CacheControl:       r.Header.Get("Cache-Control"),
		Expires:            r.Header.Get("Expires"),
		StorageClass:       r.Header.Get("x-amz-storage-class"),
		Metadata:           userMetadata(r.Header),
	}
	if v.StorageClass != "" && !storageClasses[v.StorageClass] {
		return nil, apiErr("InvalidStorageClass", 400, "The storage class you specified is not valid")
	}
	if v.StorageClass == "STANDARD" {
		v.StorageClass = ""
	}
	return v, nil
}

func partNumber(rq *request) (int, error) {
	n, err := strconv.Atoi(rq.query.Get("partNumber"))
	if err != nil || n < 1 || n > objectstore.MaxParts {
		return 0, apiErr("InvalidArgument", 400, "Part number must be an integer between 1 and 10000, inclusive")
	}
	return n, nil
}

func (h *Handler) uploadPart(w http.ResponseWriter, r *http.Request, rq *request) error {
	n, err := partNumber(rq)
	if err != nil {
		return err
	}
	size := rq.auth.DecodedLength
	if size < 0 {
		return errMissingContentLength
	}
	if size > objectstore.MaxPartSize {
		return errEntityTooLarge
	}
	in := &objectstore.PartInput{Bucket: rq.bucket, Key: rq.key, UploadID: rq.query.Get("uploadId"), Number: n, Body: r.Body, Size: size}
	if md5 := r.Header.Get("Content-MD5"); md5 != "" {
		if in.ExpectedMD5, err = checksum.ParseContentMD5(md5); err != nil {
			return err
		}
	}
	if in.ChecksumAlgorithm, in.ExpectedChecksum, err = checksumRequest(r, rq); err != nil {
		return err
	}
	p, err := h.store.UploadPart(r.Context(), in)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", `"`+p.ETag+`"`)
	if p.Checksum != "" {
		if alg := in.ChecksumAlgorithm; alg != "" {
			w.Header().Set(alg.HeaderName(), p.Checksum)
		} else if u, err := h.store.GetUpload(r.Context(), rq.bucket, rq.key, in.UploadID); err == nil {
			w.Header().Set(checksum.Algorithm(u.ChecksumAlgorithm).HeaderName(), p.Checksum)
		}
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

type completeRequest struct {
	XMLName xml.Name `xml:"CompleteMultipartUpload"`
	Parts   []struct {
		PartNumber int    `xml:"PartNumber"`
		ETag       string `xml:"ETag"`
		checksumFields
	} `xml:"Part"`
}

type completeResult struct {
	XMLName  xml.Name `xml:"CompleteMultipartUploadResult"`
	NS       string   `xml:"xmlns,attr"`
	Location string   `xml:"Location"`
	Bucket   string   `xml:"Bucket"`
	Key      string   `xml:"Key"`
	ETag     string   `xml:"ETag"`
	checksumFields
	ChecksumType string `xml:"ChecksumType,omitempty"`
}

func (h *Handler) completeMultipartUpload(w http.ResponseWriter, r *http.Request, rq *request) error {
	var req completeRequest
	if err := decodeXMLBody(r, &req, false); err != nil {
		return err
	}
	if len(req.Parts) > objectstore.MaxParts {
		return apiErr("InvalidArgument", 400, "Part number must be an integer between 1 and 10000, inclusive")
	}
	cond, err := writeCondition(r)
	if err != nil {
		return err
	}
	in := &objectstore.CompleteInput{Bucket: rq.bucket, Key: rq.key, UploadID: rq.query.Get("uploadId"), WriteCondition: cond}
	u, uerr := h.store.GetUpload(r.Context(), rq.bucket, rq.key, in.UploadID)
	for _, p := range req.Parts {
		cp := objectstore.CompletedPart{Number: p.PartNumber, ETag: p.ETag}
		if uerr == nil {
			cp.Checksum = p.get(u.ChecksumAlgorithm)
		}
		in.Parts = append(in.Parts, cp)
	}
	if uerr == nil && u.ChecksumAlgorithm != "" {
		in.ExpectedChecksum = r.Header.Get(checksum.Algorithm(u.ChecksumAlgorithm).HeaderName())
	}
	v, err := h.store.CompleteUpload(r.Context(), in)
	if err != nil {
		return err
	}
	setVersionHeader(w, v)
	res := completeResult{
		NS: xmlNS, Location: "/" + rq.bucket + "/" + rq.key, Bucket: rq.bucket, Key: rq.key,
		ETag: `"` + v.ETag + `"`, ChecksumType: v.ChecksumType,
	}
	res.set(v.ChecksumAlgorithm, v.Checksum)
	writeXML(w, http.StatusOK, res)
	return nil
}

func (h *Handler) abortMultipartUpload(w http.ResponseWriter, r *http.Request, rq *request) error {
	if err := h.store.AbortUpload(r.Context(), rq.bucket, rq.key, rq.query.Get("uploadId")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type partEntry struct {
	PartNumber   int    `xml:"PartNumber"`
	LastModified string `xml:"LastModified"`
	ETag         string `xml:"ETag"`
	Size         int64  `xml:"Size"`
	checksumFields
}

type listPartsResult struct {
	XMLName              xml.Name    `xml:"ListPartsResult"`
	NS                   string      `xml:"xmlns,attr"`
	Bucket               string      `xml:"Bucket"`
	Key                  string      `xml:"Key"`
	UploadID             string      `xml:"UploadId"`
	PartNumberMarker     int         `xml:"PartNumberMarker"`
	NextPartNumberMarker int         `xml:"NextPartNumberMarker,omitempty"`
	MaxParts             int         `xml:"MaxParts"`
	IsTruncated          bool        `xml:"IsTruncated"`
	Parts                []partEntry `xml:"Part"`
	Initiator            owner       `xml:"Initiator"`
	Owner                owner       `xml:"Owner"`
	StorageClass         string      `xml:"StorageClass"`
	ChecksumAlgorithm    string      `xml:"ChecksumAlgorithm,omitempty"`
	ChecksumType         string      `xml:"ChecksumType,omitempty"`
}

func intParam(rq *request, name string, def, max int) (int, error) {
	return parseIntParam(name, rq.query.Get(name), def, max)
}

// parseIntParam reads a non-negative integer parameter (query or header),
// capped at max.
func parseIntParam(name, s string, def, max int) (int, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, errf("InvalidArgument", 400, "Provided %s not an integer or within integer range", name)
	}
	return min(n, max), nil
}

func (h *Handler) listParts(w http.ResponseWriter, r *http.Request, rq *request) error {
	marker, err := intParam(rq, "part-number-marker", 0, objectstore.MaxParts)
	if err != nil {
		return err
	}
	max, err := intParam(rq, "max-parts", 1000, 1000)
	if err != nil {
		return err
	}
	u, parts, truncated, err := h.store.ListParts(r.Context(), rq.bucket, rq.key, rq.query.Get("uploadId"), marker, max)
	if err != nil {
		return err
	}
	res := listPartsResult{
		NS: xmlNS, Bucket: rq.bucket, Key: rq.key, UploadID: u.UploadID, PartNumberMarker: marker,
		MaxParts: max, IsTruncated: truncated, Initiator: owner{ID: u.Owner, DisplayName: u.Owner},
		Owner: owner{ID: u.Owner, DisplayName: u.Owner}, StorageClass: storageClass(u.StorageClass),
		ChecksumAlgorithm: u.ChecksumAlgorithm, ChecksumType: u.ChecksumType,
	}
	for _, p := range parts {
		e := partEntry{PartNumber: p.Number, LastModified: xmlTime(p.LastModified), ETag: `"` + p.ETag + `"`, Size: p.Size}
		e.set(u.ChecksumAlgorithm, p.Checksum)
		res.Parts = append(res.Parts, e)
	}
	if truncated && len(parts) > 0 {
		res.NextPartNumberMarker = parts[len(parts)-1].Number
	}
	writeXML(w, http.StatusOK, res)
	return nil
}

type uploadEntry struct {
	Key               string `xml:"Key"`
	UploadID          string `xml:"UploadId"`
	Initiator         owner  `xml:"Initiator"`
	Owner             owner  `xml:"Owner"`
	StorageClass      string `xml:"StorageClass"`
	Initiated         string `xml:"Initiated"`
	ChecksumAlgorithm string `xml:"ChecksumAlgorithm,omitempty"`
	ChecksumType      string `xml:"ChecksumType,omitempty"`
}

type listUploadsResult struct {
	XMLName            xml.Name       `xml:"ListMultipartUploadsResult"`
	NS                 string         `xml:"xmlns,attr"`
	Bucket             string         `xml:"Bucket"`
	KeyMarker          string         `xml:"KeyMarker"`
	UploadIDMarker     string         `xml:"UploadIdMarker"`
	NextKeyMarker      string         `xml:"NextKeyMarker,omitempty"`
	NextUploadIDMarker string         `xml:"NextUploadIdMarker,omitempty"`
	Delimiter          string         `xml:"Delimiter,omitempty"`
	Prefix             string         `xml:"Prefix"`
	MaxUploads         int            `xml:"MaxUploads"`
	IsTruncated        bool           `xml:"IsTruncated"`
	EncodingType       string         `xml:"EncodingType,omitempty"`
	Uploads            []uploadEntry  `xml:"Upload"`
	CommonPrefixes     []commonPrefix `xml:"CommonPrefixes"`
}

func (h *Handler) listMultipartUploads(w http.ResponseWriter, r *http.Request, rq *request) error {
	_, enc, err := listParams(rq)
	if err != nil {
		return err
	}
	max, err := intParam(rq, "max-uploads", 1000, 1000)
	if err != nil {
		return err
	}
	q := rq.query
	res, err := h.store.ListUploads(r.Context(), rq.bucket, objectstore.ListUploadsInput{
		Prefix: q.Get("prefix"), Delimiter: q.Get("delimiter"), KeyMarker: q.Get("key-marker"),
		UploadIDMarker: q.Get("upload-id-marker"), MaxUploads: max,
	})
	if err != nil {
		return err
	}
	out := listUploadsResult{
		NS: xmlNS, Bucket: rq.bucket, KeyMarker: enc(q.Get("key-marker")), UploadIDMarker: q.Get("upload-id-marker"),
		Delimiter: enc(q.Get("delimiter")), Prefix: enc(q.Get("prefix")), MaxUploads: max, IsTruncated: res.IsTruncated,
		EncodingType: q.Get("encoding-type"), CommonPrefixes: prefixes(res.CommonPrefixes, enc),
	}
	if res.IsTruncated {
		out.NextKeyMarker, out.NextUploadIDMarker = enc(res.NextKeyMarker), res.NextUploadIDMarker
	}
	for _, u := range res.Uploads {
		out.Uploads = append(out.Uploads, uploadEntry{
			Key: enc(u.Key), UploadID: u.UploadID, Initiator: owner{ID: u.Owner, DisplayName: u.Owner},
			Owner: owner{ID: u.Owner, DisplayName: u.Owner}, StorageClass: storageClass(u.StorageClass),
			Initiated: xmlTime(u.Initiated), ChecksumAlgorithm: u.ChecksumAlgorithm, ChecksumType: u.ChecksumType,
		})
	}
	writeXML(w, http.StatusOK, out)
	return nil
}

// partRange returns the byte range of part n of v, for GetObject and
// HeadObject with partNumber. An object not uploaded in parts has one part.
func partRange(v *objectstore.Version, n int) (start, length int64, err error) {
	if len(v.Parts) == 0 {
		if n != 1 {
			return 0, 0, apiErr("InvalidPartNumber", 416, "The requested partnumber is not satisfiable")
		}
		return 0, v.Size, nil
	}
	if n > len(v.Parts) {
		return 0, 0, apiErr("InvalidPartNumber", 416, "The requested partnumber is not satisfiable")
	}
	for _, p := range v.Parts[:n-1] {
		start += p.Size
	}
	return start, v.Parts[n-1].Size, nil
}

type copyPartResult struct {
	XMLName      xml.Name `xml:"CopyPartResult"`
	NS           string   `xml:"xmlns,attr"`
	ETag         string   `xml:"ETag"`
	LastModified string   `xml:"LastModified"`
	checksumFields
}

var errBadCopyRange = apiErr("InvalidArgument", 400, "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy")

// copyRange parses x-amz-copy-source-range, which, unlike Range, must be one
// complete range inside the source.
func copyRange(h string, size int64) (start, length int64, err error) {
	if h == "" {
		return 0, size, nil
	}
	spec, ok := strings.CutPrefix(h, "bytes=")
	first, last, ok2 := strings.Cut(spec, "-")
	if !ok || !ok2 {
		return 0, 0, errBadCopyRange
	}
	s, err1 := strconv.ParseInt(first, 10, 64)
	e, err2 := strconv.ParseInt(last, 10, 64)
	if err1 != nil || err2 != nil || s < 0 || e < s {
		return 0, 0, errBadCopyRange
	}
	if e >= size {
		return 0, 0, apiErr("InvalidRange", 416, "The requested range is not satisfiable")
	}
	return s, e - s + 1, nil
}

// uploadPartCopy fills a part from (a range of) an existing object,
// streaming it.
func (h *Handler) uploadPartCopy(w http.ResponseWriter, r *http.Request, rq *request) error {
	n, err := partNumber(rq)
	if err != nil {
		return err
	}
	src, err := parseCopySource(r.Header.Get("x-amz-copy-source"))
	if err != nil {
		return err
	}
	if err := h.authorizeCopySource(r.Context(), rq, src); err != nil {
		return err
	}
	v, body, err := h.store.GetObject(r.Context(), src.bucket, src.key, src.versionID)
	if err != nil {
		return err
	}
	defer body.Close()
	if cond := copyConditions(r); cond != nil {
		if err := cond(v); err != nil {
			return err
		}
	}
	start, length, err := copyRange(r.Header.Get("x-amz-copy-source-range"), v.Size)
	if err != nil {
		return err
	}
	if length > objectstore.MaxPartSize {
		return errEntityTooLarge
	}
	if _, err := body.Seek(start, io.SeekStart); err != nil {
		return err
	}
	p, err := h.store.UploadPart(r.Context(), &objectstore.PartInput{
		Bucket: rq.bucket, Key: rq.key, UploadID: rq.query.Get("uploadId"), Number: n,
		Body: io.LimitReader(body, length), Size: length,
	})
	if err != nil {
		return err
	}
	if !v.Null {
		w.Header().Set("x-amz-copy-source-version-id", v.VersionID)
	}
	res := copyPartResult{NS: xmlNS, ETag: `"` + p.ETag + `"`, LastModified: xmlTime(p.LastModified)}
	if p.Checksum != "" {
		if u, err := h.store.GetUpload(r.Context(), rq.bucket, rq.key, rq.query.Get("uploadId")); err == nil {
			res.set(u.ChecksumAlgorithm, p.Checksum)
		}
	}
	writeXML(w, http.StatusOK, res)
	return nil
}
