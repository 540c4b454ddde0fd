package backupapi

import (
	"context"
	"net/http"
	"strings"

	"github.com/bulwark/bulwark/internal/backup"
)

// restoreTestingRoutes registers the restore testing operations; those
// that read recovery points or restore jobs need the job service.
func (h *Handler) restoreTestingRoutes() {
	type route struct {
		pattern string
		op      string
		fn      operation
	}
	routes := []route{
		{"PUT /restore-testing/plans", "CreateRestoreTestingPlan", createRTPlan},
		{"PUT /restore-testing/plans/{$}", "CreateRestoreTestingPlan", createRTPlan},
		{"GET /restore-testing/plans", "ListRestoreTestingPlans", listRTPlans},
		{"GET /restore-testing/plans/{$}", "ListRestoreTestingPlans", listRTPlans},
		{"GET /restore-testing/plans/{plan}", "GetRestoreTestingPlan", getRTPlan},
		{"PUT /restore-testing/plans/{plan}", "UpdateRestoreTestingPlan", updateRTPlan},
		{"DELETE /restore-testing/plans/{plan}", "DeleteRestoreTestingPlan", deleteRTPlan},
		{"PUT /restore-testing/plans/{plan}/selections", "CreateRestoreTestingSelection", createRTSelection},
		{"PUT /restore-testing/plans/{plan}/selections/{$}", "CreateRestoreTestingSelection", createRTSelection},
		{"GET /restore-testing/plans/{plan}/selections", "ListRestoreTestingSelections", listRTSelections},
		{"GET /restore-testing/plans/{plan}/selections/{$}", "ListRestoreTestingSelections", listRTSelections},
		{"GET /restore-testing/plans/{plan}/selections/{sel}", "GetRestoreTestingSelection", getRTSelection},
		{"PUT /restore-testing/plans/{plan}/selections/{sel}", "UpdateRestoreTestingSelection", updateRTSelection},
		{"DELETE /restore-testing/plans/{plan}/selections/{sel}", "DeleteRestoreTestingSelection", deleteRTSelection},
	}
	if h.jobs != nil {
		routes = append(routes,
			route{"GET /restore-testing/inferred-metadata", "GetRestoreTestingInferredMetadata", rtInferredMetadata},
			route{"PUT /restore-jobs/{id}/validations", "PutRestoreValidationResult", putValidationResult},
			route{"GET /resources/{arn}/restore-jobs/{$}", "ListRestoreJobsByProtectedResource", listRestoreJobsByResource},
			route{"GET /resources/{arn}/restore-jobs", "ListRestoreJobsByProtectedResource", listRestoreJobsByResource},
		)
	}
	for _, r := range routes {
		h.mux.HandleFunc(r.pattern, func(w http.ResponseWriter, req *http.Request) { h.serve(w, req, r.op, r.fn) })
	}
}

// authorizePlan authorizes the call's action on the restore testing plan
// named in the URI, by its ARN. A plan that does not exist is judged by
// the ARN prefix and its name, so that whoever may not act on it does not
// learn whether it exists.
func (c *call) authorizePlan(ctx context.Context) (*backup.RestoreTestingPlan, error) {
	name := c.r.PathValue("plan")
	p, err := c.h.cat.GetRestoreTestingPlan(ctx, c.account, name)
	resource := c.h.cat.RestoreTestingPlanARNPrefix(c.account) + name
	if err == nil {
		resource = p.RestoreTestingPlanArn
	}
	if aerr := c.authorize(ctx, resource); aerr != nil {
		return nil, aerr
	}
	return p, err
}

// rtPlanOut is a RestoreTestingPlanForGet.
type rtPlanOut struct {
	CreationTime               *epoch
	CreatorRequestId           string `json:",omitempty"`
	LastExecutionTime          *epoch `json:",omitempty"`
	LastUpdateTime             *epoch `json:",omitempty"`
	RecoveryPointSelection     backup.RecoveryPointSelection
	RestoreTestingPlanArn      string
	RestoreTestingPlanName     string
	ScheduleExpression         string
	ScheduleExpressionTimezone string `json:",omitempty"`
	StartWindowHours           int64
}

func createRTPlan(ctx context.Context, c *call) (any, error) {
	var in struct {
		CreatorRequestId   string
		RestoreTestingPlan *backup.RestoreTestingPlanInput
		Tags               map[string]string
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if err := c.authorize(ctx, "*"); err != nil {
		return nil, err
	}
	if in.RestoreTestingPlan == nil {
		return nil, errf("MissingParameterValueException", 400, "Missing required parameter RestoreTestingPlan.")
	}
	p, err := c.h.cat.CreateRestoreTestingPlan(ctx, c.account, backup.CreateRestoreTestingPlanInput{
		Plan: *in.RestoreTestingPlan, Tags: in.Tags, CreatorRequestID: in.CreatorRequestId})
	if err != nil {
		return nil, err
	}
	c.status = http.StatusCreated
	return struct {
		CreationTime           *epoch
		RestoreTestingPlanArn  string
		RestoreTestingPlanName string
	}{ts(p.CreationTime), p.RestoreTestingPlanArn, p.RestoreTestingPlanName}, nil
}

func getRTPlan(ctx context.Context, c *call) (any, error) {
	p, err := c.authorizePlan(ctx)
	if err != nil {
		return nil, err
	}
	return struct{ RestoreTestingPlan rtPlanOut }{rtPlanOut{
		CreationTime: ts(p.CreationTime), CreatorRequestId: p.CreatorRequestId, LastExecutionTime: tsp(p.LastExecutionTime),
		LastUpdateTime: tsp(p.LastUpdateTime), RecoveryPointSelection: p.RecoveryPointSelection, RestoreTestingPlanArn: p.RestoreTestingPlanArn,
		RestoreTestingPlanName: p.RestoreTestingPlanName, ScheduleExpression: p.ScheduleExpression,
		ScheduleExpressionTimezone: p.ScheduleExpressionTimezone, StartWindowHours: p.StartWindowHours,
	}}, nil
}

func listRTPlans(ctx context.Context, c *call) (any, error) {
	if err := c.authorize(ctx, "*"); err != nil {
		return nil, err
	}
	ps, err := c.h.cat.ListRestoreTestingPlans(ctx, c.account)
	if err != nil {
		return nil, err
	}
	pg, next, err := pageBy(c, "MaxResults", "NextToken", ps, func(p *backup.RestoreTestingPlan) string { return p.RestoreTestingPlanName })
	if err != nil {
		return nil, err
	}
	type member struct {
		CreationTime               *epoch
		LastExecutionTime          *epoch `json:",omitempty"`
		LastUpdateTime             *epoch `json:",omitempty"`
		RestoreTestingPlanArn      string
		RestoreTestingPlanName     string
		ScheduleExpression         string
		ScheduleExpressionTimezone string `json:",omitempty"`
		StartWindowHours           int64
	}
	out := struct {
		NextToken           string `json:",omitempty"`
		RestoreTestingPlans []member
	}{NextToken: next, RestoreTestingPlans: []member{}}
	for _, p := range pg {
		out.RestoreTestingPlans = append(out.RestoreTestingPlans, member{ts(p.CreationTime), tsp(p.LastExecutionTime), tsp(p.LastUpdateTime),
			p.RestoreTestingPlanArn, p.RestoreTestingPlanName, p.ScheduleExpression, p.ScheduleExpressionTimezone, p.StartWindowHours})
	}
	return out, nil
}

func updateRTPlan(ctx context.Context, c *call) (any, error) {
	var in struct {
		RestoreTestingPlan *backup.RestoreTestingPlanUpdate
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if _, err := c.authorizePlan(ctx); err != nil {
		return nil, err
	}
	if in.RestoreTestingPlan == nil {
		return nil, errf("MissingParameterValueException", 400, "Missing required parameter RestoreTestingPlan.")
	}
	p, err := c.h.cat.UpdateRestoreTestingPlan(ctx, c.account, c.r.PathValue("plan"), *in.RestoreTestingPlan)
	if err != nil {
		return nil, err
	}
	return struct {
		CreationTime           *epoch
		RestoreTestingPlanArn  string
		RestoreTestingPlanName string
		UpdateTime             *epoch
	}{ts(p.CreationTime), p.RestoreTestingPlanArn, p.RestoreTestingPlanName, tsp(p.LastUpdateTime)}, nil
}

func deleteRTPlan(ctx context.Context, c *call) (any, error) {
	if _, err := c.authorizePlan(ctx); err != nil {
		return nil, err
	}
	c.status = http.StatusNoContent
	return nil, c.h.cat.DeleteRestoreTestingPlan(ctx, c.account, c.r.PathValue("plan"))
}

// rtSelectionIn is a RestoreTestingSelectionForCreate.
type rtSelectionIn struct {
	IamRoleArn                  string
	ProtectedResourceArns       []string
	ProtectedResourceConditions *backup.ProtectedResourceConditions
	ProtectedResourceType       string
	RestoreMetadataOverrides    map[string]string
	RestoreTestingSelectionName string
	ValidationWindowHours       *int64
}

// checkValidationCommand refuses a selection's ValidationCommand but the
// deployment admin's: it runs on the server.
func (c *call) checkValidationCommand(overrides map[string]string) error {
	if _, ok := overrides[backup.MetaValidationCommand]; ok && (c.h.jobs == nil || !c.h.jobs.MayRunValidationCommand(c.account)) {
		return errf("InvalidParameterValueException", 400, "RestoreMetadataOverrides %s runs a command on the server and is open to the deployment's admin account only.", backup.MetaValidationCommand)
	}
	return nil
}

// checkResourceType refuses a type no provider of the region has.
func (c *call) checkResourceType(t string) error {
	if _, ok := c.h.providers.ByType(t); t != "" && !ok {
		return errf("InvalidParameterValueException", 400, "Resource type %s is not supported; supported types: %s.", t, strings.Join(c.h.providers.Types(), ", "))
	}
	return nil
}

func createRTSelection(ctx context.Context, c *call) (any, error) {
	var in struct {
		CreatorRequestId        string
		RestoreTestingSelection *rtSelectionIn
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if _, err := c.authorizePlan(ctx); err != nil {
		return nil, err
	}
	s := in.RestoreTestingSelection
	if s == nil {
		return nil, errf("MissingParameterValueException", 400, "Missing required parameter RestoreTestingSelection.")
	}
	if err := c.checkResourceType(s.ProtectedResourceType); err != nil {
		return nil, err
	}
	// The role is handed to the restores the selection starts: the caller
	// must be allowed to pass it, as for a backup selection.
	if s.IamRoleArn != "" {
		if err := c.authorizeAction(ctx, "iam:PassRole", s.IamRoleArn); err != nil {
			return nil, err
		}
	}
	if err := c.checkValidationCommand(s.RestoreMetadataOverrides); err != nil {
		return nil, err
	}
	out, plan, err := c.h.cat.CreateRestoreTestingSelection(ctx, c.account, c.r.PathValue("plan"), backup.RestoreTestingSelection{
		RestoreTestingSelectionName: s.RestoreTestingSelectionName, ProtectedResourceType: s.ProtectedResourceType,
		ProtectedResourceArns: s.ProtectedResourceArns, ProtectedResourceConditions: s.ProtectedResourceConditions,
		RestoreMetadataOverrides: s.RestoreMetadataOverrides, ValidationWindowHours: s.ValidationWindowHours, IamRoleArn: s.IamRoleArn,
	}, in.CreatorRequestId)
	if err != nil {
		return nil, err
	}
	c.status = http.StatusCreated
	return struct {
		CreationTime                *epoch
		RestoreTestingPlanArn       string
		RestoreTestingPlanName      string
		RestoreTestingSelectionName string
	}{ts(out.CreationTime), plan.RestoreTestingPlanArn, plan.RestoreTestingPlanName, out.RestoreTestingSelectionName}, nil
}

func getRTSelection(ctx context.Context, c *call) (any, error) {
	if _, err := c.authorizePlan(ctx); err != nil {
		return nil, err
	}
	s, err := c.h.cat.GetRestoreTestingSelection(ctx, c.account, c.r.PathValue("plan"), c.r.PathValue("sel"))
	if err != nil {
		return nil, err
	}
	type selectionOut struct {
		CreationTime                *epoch
		CreatorRequestId            string `json:",omitempty"`
		IamRoleArn                  string
		ProtectedResourceArns       []string                            `json:",omitempty"`
		ProtectedResourceConditions *backup.ProtectedResourceConditions `json:",omitempty"`
		ProtectedResourceType       string
		RestoreMetadataOverrides    map[string]string `json:",omitempty"`
		RestoreTestingPlanName      string
		RestoreTestingSelectionName string
		ValidationWindowHours       *int64 `json:",omitempty"`
	}
	return struct{ RestoreTestingSelection selectionOut }{selectionOut{
		ts(s.CreationTime), s.CreatorRequestId, s.IamRoleArn, s.ProtectedResourceArns, s.ProtectedResourceConditions, s.ProtectedResourceType,
		s.RestoreMetadataOverrides, s.RestoreTestingPlanName, s.RestoreTestingSelectionName, s.ValidationWindowHours,
	}}, nil
}

func listRTSelections(ctx context.Context, c *call) (any, error) {
	if _, err := c.authorizePlan(ctx); err != nil {
		return nil, err
	}
	ss, err := c.h.cat.ListRestoreTestingSelections(ctx, c.account, c.r.PathValue("plan"))
	if err != nil {
		return nil, err
	}
	pg, next, err := pageBy(c, "MaxResults", "NextToken", ss, func(s *backup.RestoreTestingSelection) string { return s.RestoreTestingSelectionName })
	if err != nil {
		return nil, err
	}
	type member struct {
		CreationTime                *epoch
		IamRoleArn                  string
		ProtectedResourceType       string
		RestoreTestingPlanName      string
		RestoreTestingSelectionName string
		ValidationWindowHours       *int64 `json:",omitempty"`
	}
	out := struct {
		NextToken                string `json:",omitempty"`
		RestoreTestingSelections []member
	}{NextToken: next, RestoreTestingSelections: []member{}}
	for _, s := range pg {
		out.RestoreTestingSelections = append(out.RestoreTestingSelections, member{ts(s.CreationTime), s.IamRoleArn, s.ProtectedResourceType,
			s.RestoreTestingPlanName, s.RestoreTestingSelectionName, s.ValidationWindowHours})
	}
	return out, nil
}

func updateRTSelection(ctx context.Context, c *call) (any, error) {
	var in struct {
		RestoreTestingSelection *backup.RestoreTestingSelectionUpdate
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if _, err := c.authorizePlan(ctx); err != nil {
		return nil, err
	}
	u := in.RestoreTestingSelection
	if u == nil {
		return nil, errf("MissingParameterValueException", 400, "Missing required parameter RestoreTestingSelection.")
	}
	if u.IamRoleArn != nil && *u.IamRoleArn != "" {
		if err := c.authorizeAction(ctx, "iam:PassRole", *u.IamRoleArn); err != nil {
			return nil, err
		}
	}
	if err := c.checkValidationCommand(u.RestoreMetadataOverrides); err != nil {
		return nil, err
	}
	s, plan, err := c.h.cat.UpdateRestoreTestingSelection(ctx, c.account, c.r.PathValue("plan"), c.r.PathValue("sel"), *u)
	if err != nil {
		return nil, err
	}
	return struct {
		CreationTime                *epoch
		RestoreTestingPlanArn       string
		RestoreTestingPlanName      string
		RestoreTestingSelectionName string
		UpdateTime                  *epoch
	}{ts(s.CreationTime), plan.RestoreTestingPlanArn, plan.RestoreTestingPlanName, s.RestoreTestingSelectionName, tsp(s.UpdateTime)}, nil
}

func deleteRTSelection(ctx context.Context, c *call) (any, error) {
	if _, err := c.authorizePlan(ctx); err != nil {
		return nil, err
	}
	c.status = http.StatusNoContent
	return nil, c.h.cat.DeleteRestoreTestingSelection(ctx, c.account, c.r.PathValue("plan"), c.r.PathValue("sel"))
}

func rtInferredMetadata(ctx context.Context, c *call) (any, error) {
	q := c.r.URL.Query()
	arn, vault := q.Get("RecoveryPointArn"), q.Get("BackupVaultName")
	resource := arn
	if resource == "" {
		resource = "*"
	}
	if err := c.authorize(ctx, resource); err != nil {
		return nil, err
	}
	switch {
	case vault == "":
		return nil, errf("MissingParameterValueException", 400, "Missing required parameter BackupVaultName.")
	case arn == "":
		return nil, errf("MissingParameterValueException", 400, "Missing required parameter RecoveryPointArn.")
	}
	// Vaults of other accounts are out of reach (no vault access
	// policies), so another account's vault is one that is not found.
	if a := q.Get("BackupVaultAccountId"); a != "" && a != c.account {
		return nil, errf("ResourceNotFoundException", 400, "Backup vault %s of account %s does not exist.", vault, a)
	}
	_, md, err := c.h.jobs.RestoreMetadata(ctx, c.account, vault, arn)
	if err != nil {
		return nil, err
	}
	if md == nil {
		md = map[string]string{}
	}
	return struct{ InferredMetadata map[string]string }{md}, nil
}

func putValidationResult(ctx context.Context, c *call) (any, error) {
	var in struct {
		ValidationStatus        string
		ValidationStatusMessage string
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if err := c.authorize(ctx, "*"); err != nil {
		return nil, err
	}
	c.status = http.StatusNoContent
	return nil, c.h.jobs.PutRestoreValidationResult(ctx, c.account, c.r.PathValue("id"), in.ValidationStatus, in.ValidationStatusMessage)
}

func listRestoreJobsByResource(ctx context.Context, c *call) (any, error) {
	arn := c.r.PathValue("arn")
	if err := c.authorize(ctx, arn); err != nil {
		return nil, err
	}
	q := c.r.URL.Query()
	status := q.Get("status")
	after, err := c.timeQuery("recoveryPointCreationDateAfter")
	if err != nil {
		return nil, err
	}
	before, err := c.timeQuery("recoveryPointCreationDateBefore")
	if err != nil {
		return nil, err
	}
	points, err := c.h.jobs.ListRecoveryPoints(ctx, c.account, "", arn)
	if err != nil {
		return nil, err
	}
	created := map[string]*backup.RecoveryPoint{}
	for _, p := range points {
		if (after.IsZero() || p.CreationDate.After(after)) && (before.IsZero() || p.CreationDate.Before(before)) {
			created[p.ARN] = p
		}
	}
	jobs, err := c.h.jobs.ListRestoreJobs(ctx, c.account, backup.JobFilter{State: status})
	if err != nil {
		return nil, err
	}
	var mine []*backup.RestoreJob
	for _, j := range jobs {
		if created[j.RecoveryPointARN] != nil {
			mine = append(mine, j)
		}
	}
	pg, next, err := page(c, mine, func(j *backup.RestoreJob) string { return j.JobID })
	if err != nil {
		return nil, err
	}
	type member struct {
		restoreJobOut
		SourceResourceArn         string
		RecoveryPointCreationDate *epoch
	}
	out := struct {
		RestoreJobs []member
		NextToken   string `json:",omitempty"`
	}{RestoreJobs: []member{}, NextToken: next}
	for _, j := range pg {
		out.RestoreJobs = append(out.RestoreJobs, member{c.renderRestoreJob(j), arn, ts(created[j.RecoveryPointARN].CreationDate)})
	}
	return out, nil
}
