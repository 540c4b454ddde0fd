package adminapi

import "github.com/bulwark/bulwark/internal/audit"

// AuditPath answers the protection audit: is each resource protected
// against each threat, by what, with which measured RPO and RTO.
//
//	GET AuditPath[?account=ID][&resource=ARN][&require=THREATS] → AuditReport
//
// The region asked gathers every region's facts and answers from those
// that answered. account is the caller's by default; the deployment's
// admin sees every account's unless it names one. require replaces the
// deployment's requirement (a comma-separated list of threats, all or
// none); a resource's bulwark:protect tag still wins.
const AuditPath = "/_bulwark/v1/audit"

// AuditFactsPath is the peer call that returns a region's own facts, of
// every account: AuditFacts.
const AuditFactsPath = "/_bulwark/v1/audit/facts"

// AuditReport is the audit's answer, as `bulwark audit --json` prints it.
type AuditReport = audit.Report

// AuditFacts is one region's answer to AuditFactsPath.
type AuditFacts = audit.Facts
