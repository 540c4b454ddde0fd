package server

import (
	"io"
	"net/http"

	"github.com/bulwark/bulwark/internal/audit"
)

// maxPriceTable caps the body of a POST to the cost model.
const maxPriceTable = 64 << 10

// serveCost answers the cost model (adminapi.CostPath) from the facts the
// audit gathers: the deployment's prices for a GET, the posted table over
// them for a POST. It is authorized as the audit is: it shows the same
// facts, priced.
func (r *Region) serveCost(w http.ResponseWriter, req *http.Request) {
	account, ok := r.auditAccount(w, req, "the cost of the protection")
	if !ok {
		return
	}
	prices := audit.DefaultPrices
	if r.cfg.Prices != nil {
		prices = *r.cfg.Prices
	}
	if req.Method == http.MethodPost {
		p, err := audit.ReadPrices(io.LimitReader(req.Body, maxPriceTable), prices)
		if err != nil {
			writeJSONError(w, http.StatusBadRequest, "InvalidParameterValueException", err.Error())
			return
		}
		prices = p
	}
	facts, unreached := r.gatherAudit(req.Context())
	now := r.auditNow()
	rep := audit.PriceUsage(audit.Usages(audit.Input{Now: now, Facts: facts, Unreached: unreached, Account: account,
		Resource: req.URL.Query().Get("resource")}), prices, now)
	rep.Unreached = unreached
	writeJSON(w, http.StatusOK, rep)
}
