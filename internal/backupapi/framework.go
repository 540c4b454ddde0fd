package backupapi

import (
	"context"
	"net/http"

	"github.com/bulwark/bulwark/internal/backup"
)

// auditRoutes registers Backup Audit Manager's operations: frameworks
// here, report plans and report jobs in report.go.
func (h *Handler) auditRoutes() {
	if h.audit == nil {
		return
	}
	for _, r := range []struct {
		pattern string
		op      string
		fn      operation
	}{
		{"POST /audit/frameworks", "CreateFramework", createFramework},
		{"GET /audit/frameworks", "ListFrameworks", listFrameworks},
		{"GET /audit/frameworks/{name}", "DescribeFramework", describeFramework},
		{"PUT /audit/frameworks/{name}", "UpdateFramework", updateFramework},
		{"DELETE /audit/frameworks/{name}", "DeleteFramework", deleteFramework},
		{"POST /audit/report-plans", "CreateReportPlan", createReportPlan},
		{"GET /audit/report-plans", "ListReportPlans", listReportPlans},
		{"GET /audit/report-plans/{name}", "DescribeReportPlan", describeReportPlan},
		{"PUT /audit/report-plans/{name}", "UpdateReportPlan", updateReportPlan},
		{"DELETE /audit/report-plans/{name}", "DeleteReportPlan", deleteReportPlan},
		{"POST /audit/report-jobs/{name}", "StartReportJob", startReportJob},
		{"GET /audit/report-jobs", "ListReportJobs", listReportJobs},
		{"GET /audit/report-jobs/{id}", "DescribeReportJob", describeReportJob},
	} {
		h.mux.HandleFunc(r.pattern, func(w http.ResponseWriter, req *http.Request) { h.serve(w, req, r.op, r.fn) })
	}
}

// authorizeNamed authorizes the call's action on the framework or report
// plan named in the URI, by its ARN; one that does not exist is judged by
// the ARN prefix and its name, so that whoever may not act on it does not
// learn whether it exists.
func authorizeNamed[T any](ctx context.Context, c *call, describe func(context.Context, string, string) (*T, error), prefix string, arnOf func(*T) string) (*T, error) {
	name := c.r.PathValue("name")
	v, err := describe(ctx, c.account, name)
	resource := prefix + name
	if err == nil {
		resource = arnOf(v)
	}
	if aerr := c.authorize(ctx, resource); aerr != nil {
		return nil, aerr
	}
	return v, err
}

func (c *call) authorizeFramework(ctx context.Context) (*backup.Framework, error) {
	return authorizeNamed(ctx, c, c.h.audit.DescribeFramework, c.h.audit.FrameworkARNPrefix(c.account), func(f *backup.Framework) string { return f.FrameworkArn })
}

func createFramework(ctx context.Context, c *call) (any, error) {
	var in struct {
		FrameworkName        string
		FrameworkDescription string
		FrameworkControls    []backup.FrameworkControl
		FrameworkTags        map[string]string
		IdempotencyToken     string
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if err := c.authorize(ctx, "*"); err != nil {
		return nil, err
	}
	f, err := c.h.audit.CreateFramework(ctx, c.account, backup.FrameworkInput{
		FrameworkName: in.FrameworkName, FrameworkDescription: in.FrameworkDescription, FrameworkControls: in.FrameworkControls,
		FrameworkTags: in.FrameworkTags, IdempotencyToken: in.IdempotencyToken,
	})
	if err != nil {
		return nil, err
	}
	return struct{ FrameworkName, FrameworkArn string }{f.FrameworkName, f.FrameworkArn}, nil
}

func describeFramework(ctx context.Context, c *call) (any, error) {
	f, err := c.authorizeFramework(ctx)
	if err != nil {
		return nil, err
	}
	return struct {
		FrameworkName        string
		FrameworkArn         string
		FrameworkDescription string `json:",omitempty"`
		FrameworkControls    []backup.FrameworkControl
		CreationTime         *epoch
		DeploymentStatus     string
		FrameworkStatus      string
		IdempotencyToken     string `json:",omitempty"`
	}{f.FrameworkName, f.FrameworkArn, f.FrameworkDescription, f.FrameworkControls, ts(f.CreationTime), f.DeploymentStatus,
		f.FrameworkStatus, f.IdempotencyToken}, nil
}

func listFrameworks(ctx context.Context, c *call) (any, error) {
	if err := c.authorize(ctx, "*"); err != nil {
		return nil, err
	}
	fs, err := c.h.audit.ListFrameworks(ctx, c.account)
	if err != nil {
		return nil, err
	}
	pg, next, err := pageBy(c, "MaxResults", "NextToken", fs, func(f *backup.Framework) string { return f.FrameworkName })
	if err != nil {
		return nil, err
	}
	type member struct {
		FrameworkName        string
		FrameworkArn         string
		FrameworkDescription string `json:",omitempty"`
		NumberOfControls     int
		CreationTime         *epoch
		DeploymentStatus     string
	}
	out := struct {
		Frameworks []member
		NextToken  string `json:",omitempty"`
	}{Frameworks: []member{}, NextToken: next}
	for _, f := range pg {
		out.Frameworks = append(out.Frameworks, member{f.FrameworkName, f.FrameworkArn, f.FrameworkDescription, len(f.FrameworkControls),
			ts(f.CreationTime), f.DeploymentStatus})
	}
	return out, nil
}

func updateFramework(ctx context.Context, c *call) (any, error) {
	var in struct {
		FrameworkDescription *string
		FrameworkControls    []backup.FrameworkControl
		IdempotencyToken     string
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if _, err := c.authorizeFramework(ctx); err != nil {
		return nil, err
	}
	f, err := c.h.audit.UpdateFramework(ctx, c.account, c.r.PathValue("name"), backup.FrameworkUpdate{
		FrameworkDescription: in.FrameworkDescription, FrameworkControls: in.FrameworkControls, IdempotencyToken: in.IdempotencyToken})
	if err != nil {
		return nil, err
	}
	return struct {
		FrameworkName, FrameworkArn string
		CreationTime                *epoch
	}{f.FrameworkName, f.FrameworkArn, ts(f.CreationTime)}, nil
}

func deleteFramework(ctx context.Context, c *call) (any, error) {
	if _, err := c.authorizeFramework(ctx); err != nil {
		return nil, err
	}
	return nil, c.h.audit.DeleteFramework(ctx, c.account, c.r.PathValue("name"))
}
