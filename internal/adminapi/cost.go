package adminapi

// CostPath is the cost model of the protection audit:
//
//	GET  CostPath[?account=ID]          → audit.CostReport, with the deployment's prices
//	POST CostPath[?account=ID]  Prices  → audit.CostReport, with the prices given
//
// Prices is an audit.Prices as JSON; the prices it leaves out keep the
// deployment's. The report covers the caller's account, or the one named
// by the admin.
const CostPath = "/_bulwark/v1/audit/cost"
