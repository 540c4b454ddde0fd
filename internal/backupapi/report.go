package backupapi

import (
	"context"

	"github.com/bulwark/bulwark/internal/backup"
)

func (c *call) authorizeReportPlan(ctx context.Context) (*backup.ReportPlan, error) {
	return authorizeNamed(ctx, c, c.h.audit.DescribeReportPlan, c.h.audit.ReportPlanARNPrefix(c.account), func(p *backup.ReportPlan) string { return p.ReportPlanArn })
}

// reportPlanOut is a ReportPlan of the model.
type reportPlanOut struct {
	ReportPlanArn               string
	ReportPlanName              string
	ReportPlanDescription       string `json:",omitempty"`
	ReportSetting               backup.ReportSetting
	ReportDeliveryChannel       backup.ReportDeliveryChannel
	DeploymentStatus            string
	CreationTime                *epoch
	LastAttemptedExecutionTime  *epoch `json:",omitempty"`
	LastSuccessfulExecutionTime *epoch `json:",omitempty"`
}

func renderReportPlan(p *backup.ReportPlan) reportPlanOut {
	return reportPlanOut{p.ReportPlanArn, p.ReportPlanName, p.ReportPlanDescription, p.ReportSetting, p.ReportDeliveryChannel,
		p.DeploymentStatus, ts(p.CreationTime), tsp(p.LastAttemptedExecutionTime), tsp(p.LastSuccessfulExecutionTime)}
}

type reportPlanAnswer struct {
	ReportPlanName string
	ReportPlanArn  string
	CreationTime   *epoch
}

func createReportPlan(ctx context.Context, c *call) (any, error) {
	var in backup.ReportPlanInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if err := c.authorize(ctx, "*"); err != nil {
		return nil, err
	}
	p, err := c.h.audit.CreateReportPlan(ctx, c.account, in)
	if err != nil {
		return nil, err
	}
	return reportPlanAnswer{p.ReportPlanName, p.ReportPlanArn, ts(p.CreationTime)}, nil
}

func describeReportPlan(ctx context.Context, c *call) (any, error) {
	p, err := c.authorizeReportPlan(ctx)
	if err != nil {
		return nil, err
	}
	return struct{ ReportPlan reportPlanOut }{renderReportPlan(p)}, nil
}

func listReportPlans(ctx context.Context, c *call) (any, error) {
	if err := c.authorize(ctx, "*"); err != nil {
		return nil, err
	}
	ps, err := c.h.audit.ListReportPlans(ctx, c.account)
	if err != nil {
		return nil, err
	}
	pg, next, err := pageBy(c, "MaxResults", "NextToken", ps, func(p *backup.ReportPlan) string { return p.ReportPlanName })
	if err != nil {
		return nil, err
	}
	out := struct {
		ReportPlans []reportPlanOut
		NextToken   string `json:",omitempty"`
	}{ReportPlans: []reportPlanOut{}, NextToken: next}
	for _, p := range pg {
		out.ReportPlans = append(out.ReportPlans, renderReportPlan(p))
	}
	return out, nil
}

func updateReportPlan(ctx context.Context, c *call) (any, error) {
	var in backup.ReportPlanUpdate
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if _, err := c.authorizeReportPlan(ctx); err != nil {
		return nil, err
	}
	p, err := c.h.audit.UpdateReportPlan(ctx, c.account, c.r.PathValue("name"), in)
	if err != nil {
		return nil, err
	}
	return reportPlanAnswer{p.ReportPlanName, p.ReportPlanArn, ts(p.CreationTime)}, nil
}

func deleteReportPlan(ctx context.Context, c *call) (any, error) {
	if _, err := c.authorizeReportPlan(ctx); err != nil {
		return nil, err
	}
	return nil, c.h.audit.DeleteReportPlan(ctx, c.account, c.r.PathValue("name"))
}

func startReportJob(ctx context.Context, c *call) (any, error) {
	var in struct{ IdempotencyToken string }
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if _, err := c.authorizeReportPlan(ctx); err != nil {
		return nil, err
	}
	j, err := c.h.audit.StartReportJob(ctx, c.account, c.r.PathValue("name"), in.IdempotencyToken)
	if err != nil {
		return nil, err
	}
	return struct{ ReportJobId string }{j.ReportJobId}, nil
}

// reportJobOut is a ReportJob of the model.
type reportJobOut struct {
	ReportJobId       string
	ReportPlanArn     string
	ReportTemplate    string
	CreationTime      *epoch
	CompletionTime    *epoch `json:",omitempty"`
	Status            string
	StatusMessage     string                    `json:",omitempty"`
	ReportDestination *backup.ReportDestination `json:",omitempty"`
}

func renderReportJob(j *backup.ReportJob) reportJobOut {
	return reportJobOut{j.ReportJobId, j.ReportPlanArn, j.ReportTemplate, ts(j.CreationTime), tsp(j.CompletionTime), j.Status,
		j.StatusMessage, j.ReportDestination}
}

func describeReportJob(ctx context.Context, c *call) (any, error) {
	if err := c.authorize(ctx, "*"); err != nil {
		return nil, err
	}
	j, err := c.h.audit.DescribeReportJob(ctx, c.account, c.r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return struct{ ReportJob reportJobOut }{renderReportJob(j)}, nil
}

func listReportJobs(ctx context.Context, c *call) (any, error) {
	if err := c.authorize(ctx, "*"); err != nil {
		return nil, err
	}
	q := c.r.URL.Query()
	f := backup.ReportJobFilter{ReportPlanName: q.Get("ReportPlanName"), Status: q.Get("Status")}
	switch f.Status {
	case "", backup.ReportCreated, backup.ReportRunning, backup.ReportCompleted, backup.ReportFailed:
	default:
		return nil, errf("InvalidParameterValueException", 400, "Invalid Status %q: it must be CREATED, RUNNING, COMPLETED or FAILED.", f.Status)
	}
	if f.ReportPlanName != "" {
		if _, err := c.h.audit.DescribeReportPlan(ctx, c.account, f.ReportPlanName); err != nil {
			return nil, err
		}
	}
	var err error
	if f.CreatedAfter, err = c.timeQuery("CreationAfter"); err != nil {
		return nil, err
	}
	if f.CreatedBefore, err = c.timeQuery("CreationBefore"); err != nil {
		return nil, err
	}
	jobs, err := c.h.audit.ListReportJobs(ctx, c.account, f)
	if err != nil {
		return nil, err
	}
	pg, next, err := pageBy(c, "MaxResults", "NextToken", jobs, func(j *backup.ReportJob) string { return j.ReportJobId })
	if err != nil {
		return nil, err
	}
	out := struct {
		ReportJobs []reportJobOut
		NextToken  string `json:",omitempty"`
	}{ReportJobs: []reportJobOut{}, NextToken: next}
	for _, j := range pg {
		out.ReportJobs = append(out.ReportJobs, renderReportJob(j))
	}
	return out, nil
}
