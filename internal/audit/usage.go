package audit

import "time"

// Usages reads, from the facts of every region that answered, what each
// resource did and holds: the cost model's input. The resources are those
// the matrix audits (Input's account and resource filters apply; restore
// tests' scratch targets are left out), less the buckets that hold only
// replicas and are protected by nothing of their own: their bytes are
// priced with the buckets they are replicas of.
func Usages(in Input) []Usage {
	ix := newIndex(in)
	var out []Usage
	for _, res := range ix.resources() {
		if !in.keeps(res) {
			continue
		}
		u := ix.usage(res)
		if onlyReplicas(res) && !u.Replicated && !u.BackedUp {
			continue
		}
		out = append(out, u)
	}
	return out
}

func onlyReplicas(res *Resource) bool {
	return res.Stored != nil && res.Stored.Bytes == res.Stored.ReplicaBytes && res.Stored.ReplicaVersions > 0
}

func (ix *index) usage(res *Resource) Usage {
	u := Usage{ARN: res.ARN, Type: res.Type, Replicable: res.Stored != nil, BackedUp: len(res.Plans) > 0}
	if res.Stored != nil {
		u.SourceBytes = res.Stored.Bytes - res.Stored.ReplicaBytes
	}
	for _, rule := range res.Replication {
		u.Replicated = true
		u.ReplicationRequests += rule.Requests
		if rule.UsageSince != nil && (u.RequestsSince.IsZero() || rule.UsageSince.Before(u.RequestsSince)) {
			u.RequestsSince = *rule.UsageSince
		}
		u.ReplicaBytes += ix.replicaShare(rule.DestinationBucket)
	}
	for _, pr := range res.Plans {
		for _, c := range pr.CopyTo {
			if c.Region != "" && c.Region != res.Region {
				u.CrossRegionCopy = true
			}
		}
	}
	var newest time.Time
	for _, p := range ix.points[res.ARN] {
		if !restorable(p) {
			continue
		}
		u.BackedUp = true
		if p.Region != res.Region {
			u.CrossRegionCopy = true
		}
		if p.StorageClass == "COLD" {
			u.ColdBytes += p.BytesNew
		} else {
			u.WarmBytes += p.BytesNew
		}
		u.LogicalBytes += p.BackupSizeInBytes
		// A resource that is not a bucket has no size but its points'.
		if res.Stored == nil && p.CopyOf == "" && p.Created.After(newest) {
			newest, u.SourceBytes = p.Created, p.BackupSizeInBytes
		}
	}
	return u
}

// replicaShare is the part of a destination bucket's replica bytes that
// one of the buckets replicating into it is charged: an equal share, as
// the facts do not say whose version each replica is.
func (ix *index) replicaShare(dest string) int64 {
	for _, d := range ix.byARN {
		if d.Stored != nil && d.Name == dest {
			return d.Stored.ReplicaBytes / int64(len(ix.replicaOf[dest]))
		}
	}
	return 0
}
