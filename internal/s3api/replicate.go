package s3api

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/bulwark/bulwark/internal/objectstore"
)

// The replica write: how a region's replication worker stores a version in
// the destination bucket. It is a PUT on the object with these headers, and
// a body made of the version's description (JSON, ReplicaMetaLengthHeader
// bytes) followed by its data, the parts one after the other. It needs
// s3:ReplicateObject (s3:ReplicateDelete for a delete marker,
// s3:ReplicateTags for tags) on the destination, never s3:PutObject.
const (
	// ReplicationHeader names what is replicated: ReplicateObject,
	// ReplicateDelete or ReplicateTags.
	ReplicationHeader = "X-Bulwark-Replication"
	// ReplicaMetaLengthHeader is the length of the JSON description that
	// starts the body.
	ReplicaMetaLengthHeader = "X-Bulwark-Replica-Meta-Length"
	// OwnerOverrideHeader "Destination" makes the bucket's owner the
	// replica's owner (AccessControlTranslation); it needs
	// s3:ObjectOwnerOverrideToBucketOwner.
	OwnerOverrideHeader = "X-Bulwark-Owner-Override"
)

// Replication operations, named as their IAM actions.
const (
	OpReplicateObject = "ReplicateObject"
	OpReplicateDelete = "ReplicateDelete"
	OpReplicateTags   = "ReplicateTags"
)

// maxReplicaMeta bounds the description: 10,000 parts fit easily.
const maxReplicaMeta = 4 << 20

func replicationOp(r *http.Request) (string, bool) {
	switch op := r.Header.Get(ReplicationHeader); op {
	case OpReplicateObject, OpReplicateDelete, OpReplicateTags:
		return op, true
	case "":
		return "", false
	default:
		return "Unknown", true
	}
}

func (h *Handler) replicate(w http.ResponseWriter, r *http.Request, rq *request) error {
	size := rq.auth.DecodedLength
	if size < 0 {
		return errMissingContentLength
	}
	n, err := strconv.ParseInt(r.Header.Get(ReplicaMetaLengthHeader), 10, 64)
	if err != nil || n <= 0 || n > maxReplicaMeta || n > size {
		return apiErr("InvalidArgument", 400, ReplicaMetaLengthHeader+" must give the length of the replica description at the start of the body")
	}
	raw := make([]byte, n)
	if _, err := io.ReadFull(r.Body, raw); err != nil {
		return errIncompleteBody
	}
	var m objectstore.ReplicaMeta
	if err := json.Unmarshal(raw, &m); err != nil {
		return apiErr("MalformedJSON", 400, fmt.Sprintf("The replica description is not valid JSON: %v", err))
	}
	op := rq.op
	if (op == OpReplicateDelete) != m.DeleteMarker && op != OpReplicateTags {
		return apiErr("InvalidArgument", 400, "ReplicateDelete carries delete markers and ReplicateObject object versions")
	}
	// Beyond the operation's own action: tags carried with a version need
	// s3:ReplicateTags, and taking the bucket owner's ownership needs
	// s3:ObjectOwnerOverrideToBucketOwner, as in S3.
	if op == OpReplicateObject && len(m.Tags) > 0 {
		if err := h.authorizeAlso(r, rq, "s3:ReplicateTags"); err != nil {
			return err
		}
	}
	if r.Header.Get(OwnerOverrideHeader) == "Destination" && op != OpReplicateTags {
		if err := h.authorizeAlso(r, rq, "s3:ObjectOwnerOverrideToBucketOwner"); err != nil {
			return err
		}
		b, err := h.store.Bucket(r.Context(), rq.bucket)
		if err != nil {
			return err
		}
		m.Owner = b.Owner
	}
	var v *objectstore.Version
	if op == OpReplicateTags {
		if err := objectstore.ValidateTags(m.Tags, objectstore.MaxObjectTags); err != nil {
			return err
		}
		v, err = h.store.ApplyReplicaTags(r.Context(), rq.bucket, rq.key, m.VersionID, m.Tags)
	} else {
		if m.Size != size-n && !m.DeleteMarker {
			return errIncompleteBody
		}
		class := r.Header.Get("x-amz-storage-class")
		if class != "" && !storageClasses[class] {
			return apiErr("InvalidStorageClass", 400, "The storage class you specified is not valid")
		}
		if class == "STANDARD" {
			class = ""
		}
		v, err = h.store.ApplyReplica(r.Context(), rq.bucket, rq.key, &m, r.Body, class)
	}
	if err != nil {
		return err
	}
	w.Header().Set("x-amz-version-id", v.VersionID)
	w.Header().Set("x-amz-replication-status", v.ReplicationStatus)
	w.WriteHeader(http.StatusOK)
	return nil
}
