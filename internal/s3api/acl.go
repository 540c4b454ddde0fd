package s3api

import (
	"encoding/xml"
	"net/http"
	"strings"
)

// Every Bulwark bucket behaves as an S3 bucket whose Object Ownership is
// BucketOwnerEnforced: ACLs are disabled, the bucket owner owns every
// object, and access is decided by policy alone. The ACL calls answer as
// such a bucket does. Reading an ACL shows the owner's FULL_CONTROL;
// setting one, or sending an ACL with a new object, succeeds only when it
// grants nothing beyond that.

const xsiNS = "http://www.w3.org/2001/XMLSchema-instance"

// Canned ACLs that grant the bucket owner full control and nobody else.
var ownerOnlyCannedACLs = map[string]bool{"private": true, "bucket-owner-full-control": true}

type accessControlPolicy struct {
	XMLName xml.Name `xml:"AccessControlPolicy"`
	NS      string   `xml:"xmlns,attr"`
	Owner   owner    `xml:"Owner"`
	Grants  []grant  `xml:"AccessControlList>Grant"`
}

type grant struct {
	Grantee    grantee `xml:"Grantee"`
	Permission string  `xml:"Permission"`
}

// grantee declares the xsi prefix on itself, as S3 does: clients look for
// the type attribute under the prefix declared on the same element.
type grantee struct {
	XSI         string `xml:"xmlns:xsi,attr"`
	Type        string `xml:"xsi:type,attr"`
	ID          string `xml:"ID"`
	DisplayName string `xml:"DisplayName,omitempty"`
}

// ownerPolicy is the ACL of a bucket, or of any object in it, owned by
// account.
func ownerPolicy(account string) accessControlPolicy {
	who := owner{ID: account, DisplayName: account}
	return accessControlPolicy{
		NS: xmlNS, Owner: who,
		Grants: []grant{{
			Grantee:    grantee{XSI: xsiNS, Type: "CanonicalUser", ID: who.ID, DisplayName: who.DisplayName},
			Permission: "FULL_CONTROL",
		}},
	}
}

// aclRequest is the body of PutBucketAcl and PutObjectAcl. The grantee's
// type is read from its attributes by local name, whatever prefix (or
// none) the client bound.
type aclRequest struct {
	XMLName xml.Name `xml:"AccessControlPolicy"`
	Owner   *struct {
		ID string `xml:"ID"`
	} `xml:"Owner"`
	Grants []struct {
		Grantee struct {
			Attrs []xml.Attr `xml:",any,attr"`
			ID    string     `xml:"ID"`
			URI   string     `xml:"URI"`
			Email string     `xml:"EmailAddress"`
		} `xml:"Grantee"`
		Permission string `xml:"Permission"`
	} `xml:"AccessControlList>Grant"`
}

// ownerOnly reports whether the policy grants account FULL_CONTROL and
// nothing to anyone else.
func (a *aclRequest) ownerOnly(account string) bool {
	if a.Owner != nil && a.Owner.ID != account || len(a.Grants) == 0 {
		return false
	}
	for _, g := range a.Grants {
		typ := ""
		for _, at := range g.Grantee.Attrs {
			if at.Name.Local == "type" {
				typ = at.Value
			}
		}
		if typ != "CanonicalUser" || g.Grantee.ID != account || g.Grantee.URI != "" || g.Grantee.Email != "" || g.Permission != "FULL_CONTROL" {
			return false
		}
	}
	return true
}

// grantHeaders reports whether the request carries an x-amz-grant-* header.
func grantHeaders(r *http.Request) bool {
	for k := range r.Header {
		if strings.HasPrefix(strings.ToLower(k), "x-amz-grant-") {
			return true
		}
	}
	return false
}

// refuseACLHeaders refuses a new object (PutObject, CopyObject,
// CreateMultipartUpload) whose ACL would grant more than the bucket owner's
// full control. A missing bucket is reported as such first, as S3 does.
func (h *Handler) refuseACLHeaders(r *http.Request, rq *request) error {
	acl := r.Header.Get("x-amz-acl")
	if !grantHeaders(r) && (acl == "" || ownerOnlyCannedACLs[acl]) {
		return nil
	}
	if _, err := h.store.Bucket(r.Context(), rq.bucket); err != nil {
		return err
	}
	return errACLNotSupported
}

// checkACLRequest accepts a PutBucketAcl or PutObjectAcl that grants
// account, the bucket owner, full control and nothing more, as a canned
// ACL, a policy in the body, or both.
func checkACLRequest(r *http.Request, rq *request, account string) error {
	acl := r.Header.Get("x-amz-acl")
	if grantHeaders(r) || acl != "" && !ownerOnlyCannedACLs[acl] {
		return errACLNotSupported
	}
	if rq.auth.DecodedLength == 0 {
		if acl == "" {
			return errACLNotSupported
		}
		return nil
	}
	var doc aclRequest
	if err := decodeVerifiedXML(r, rq, &doc, maxXMLBody); err != nil {
		return err
	}
	if !doc.ownerOnly(account) {
		return errACLNotSupported
	}
	return nil
}

func (h *Handler) getBucketACL(w http.ResponseWriter, r *http.Request, rq *request) error {
	b, err := h.store.Bucket(r.Context(), rq.bucket)
	if err != nil {
		return err
	}
	writeXML(w, http.StatusOK, ownerPolicy(b.Owner))
	return nil
}

func (h *Handler) putBucketACL(w http.ResponseWriter, r *http.Request, rq *request) error {
	b, err := h.store.Bucket(r.Context(), rq.bucket)
	if err != nil {
		return err
	}
	if err := checkACLRequest(r, rq, b.Owner); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (h *Handler) getObjectACL(w http.ResponseWriter, r *http.Request, rq *request) error {
	account, err := h.objectOwner(r, rq)
	if err != nil {
		return err
	}
	writeXML(w, http.StatusOK, ownerPolicy(account))
	return nil
}

func (h *Handler) putObjectACL(w http.ResponseWriter, r *http.Request, rq *request) error {
	account, err := h.objectOwner(r, rq)
	if err != nil {
		return err
	}
	if err := checkACLRequest(r, rq, account); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// objectOwner resolves the object an object ACL call names, answering
// NoSuchKey, NoSuchVersion or a delete marker as GetObject does, and
// returns its owner: the bucket owner.
func (h *Handler) objectOwner(r *http.Request, rq *request) (string, error) {
	vid, err := versionIDParam(rq)
	if err != nil {
		return "", err
	}
	b, err := h.store.Bucket(r.Context(), rq.bucket)
	if err != nil {
		return "", err
	}
	if _, err := h.store.HeadObject(r.Context(), rq.bucket, rq.key, vid); err != nil {
		return "", err
	}
	return b.Owner, nil
}
