package backupapi

import (
	"context"

	"github.com/bulwark/bulwark/internal/backup"
)

// planMember is a BackupPlansListMember, of ListBackupPlans and
// ListBackupPlanVersions.
type planMember struct {
	BackupPlanArn          string
	BackupPlanId           string
	CreationDate           *epoch
	DeletionDate           *epoch `json:",omitempty"`
	VersionId              string
	BackupPlanName         string
	CreatorRequestId       string                         `json:",omitempty"`
	AdvancedBackupSettings []backup.AdvancedBackupSetting `json:",omitempty"`
}

func renderMember(v *backup.PlanVersion) planMember {
	return planMember{
		BackupPlanArn:          v.BackupPlanARN,
		BackupPlanId:           v.BackupPlanID,
		CreationDate:           ts(v.CreationDate),
		DeletionDate:           tsp(v.DeletionDate),
		VersionId:              v.VersionID,
		BackupPlanName:         v.Plan.BackupPlanName,
		CreatorRequestId:       v.CreatorRequestID,
		AdvancedBackupSettings: v.Plan.AdvancedBackupSettings,
	}
}

// planIn is the body of CreateBackupPlan and UpdateBackupPlan.
type planIn struct {
	BackupPlan       *backup.Plan
	BackupPlanTags   map[string]string
	CreatorRequestId string
}

func (p *planIn) plan() (backup.Plan, error) {
	if p.BackupPlan == nil {
		return backup.Plan{}, errf("MissingParameterValueException", 400, "Missing required parameter BackupPlan.")
	}
	return *p.BackupPlan, nil
}

type planWritten struct {
	BackupPlanId           string
	BackupPlanArn          string
	CreationDate           *epoch
	VersionId              string
	AdvancedBackupSettings []backup.AdvancedBackupSetting `json:",omitempty"`
}

func createPlan(ctx context.Context, c *call) (any, error) {
	var in planIn
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if err := c.authorize(ctx, "*"); err != nil {
		return nil, err
	}
	p, err := in.plan()
	if err != nil {
		return nil, err
	}
	v, err := c.h.cat.CreatePlan(ctx, c.account, backup.CreatePlanInput{Plan: p, Tags: in.BackupPlanTags, CreatorRequestID: in.CreatorRequestId})
	if err != nil {
		return nil, err
	}
	return planWritten{v.BackupPlanID, v.BackupPlanARN, ts(v.CreationDate), v.VersionID, v.Plan.AdvancedBackupSettings}, nil
}

func getPlan(ctx context.Context, c *call) (any, error) {
	id := c.r.PathValue("id")
	if err := c.authorize(ctx, c.h.cat.PlanARN(c.account, id)); err != nil {
		return nil, err
	}
	v, err := c.h.cat.GetPlan(ctx, c.account, id, c.r.URL.Query().Get("versionId"))
	if err != nil {
		return nil, err
	}
	return struct {
		BackupPlan             backup.Plan
		BackupPlanId           string
		BackupPlanArn          string
		VersionId              string
		CreatorRequestId       string `json:",omitempty"`
		CreationDate           *epoch
		DeletionDate           *epoch                         `json:",omitempty"`
		AdvancedBackupSettings []backup.AdvancedBackupSetting `json:",omitempty"`
	}{v.Plan, v.BackupPlanID, v.BackupPlanARN, v.VersionID, v.CreatorRequestID, ts(v.CreationDate), tsp(v.DeletionDate), v.Plan.AdvancedBackupSettings}, nil
}

func updatePlan(ctx context.Context, c *call) (any, error) {
	var in planIn
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	id := c.r.PathValue("id")
	if err := c.authorize(ctx, c.h.cat.PlanARN(c.account, id)); err != nil {
		return nil, err
	}
	p, err := in.plan()
	if err != nil {
		return nil, err
	}
	v, err := c.h.cat.UpdatePlan(ctx, c.account, id, p)
	if err != nil {
		return nil, err
	}
	return planWritten{v.BackupPlanID, v.BackupPlanARN, ts(v.CreationDate), v.VersionID, v.Plan.AdvancedBackupSettings}, nil
}

func deletePlan(ctx context.Context, c *call) (any, error) {
	id := c.r.PathValue("id")
	if err := c.authorize(ctx, c.h.cat.PlanARN(c.account, id)); err != nil {
		return nil, err
	}
	v, err := c.h.cat.DeletePlan(ctx, c.account, id)
	if err != nil {
		return nil, err
	}
	return struct {
		BackupPlanId  string
		BackupPlanArn string
		DeletionDate  *epoch
		VersionId     string
	}{v.BackupPlanID, v.BackupPlanARN, tsp(v.DeletionDate), v.VersionID}, nil
}

func listPlans(ctx context.Context, c *call) (any, error) {
	if err := c.authorize(ctx, "*"); err != nil {
		return nil, err
	}
	deleted, err := c.boolQuery("includeDeleted")
	if err != nil {
		return nil, err
	}
	vs, err := c.h.cat.ListPlans(ctx, c.account, deleted)
	if err != nil {
		return nil, err
	}
	pg, next, err := page(c, vs, func(v *backup.PlanVersion) string { return v.BackupPlanID })
	if err != nil {
		return nil, err
	}
	out := struct {
		BackupPlansList []planMember
		NextToken       string `json:",omitempty"`
	}{BackupPlansList: []planMember{}, NextToken: next}
	for _, v := range pg {
		out.BackupPlansList = append(out.BackupPlansList, renderMember(v))
	}
	return out, nil
}

func listPlanVersions(ctx context.Context, c *call) (any, error) {
	id := c.r.PathValue("id")
	if err := c.authorize(ctx, c.h.cat.PlanARN(c.account, id)); err != nil {
		return nil, err
	}
	vs, err := c.h.cat.ListPlanVersions(ctx, c.account, id)
	if err != nil {
		return nil, err
	}
	pg, next, err := page(c, vs, func(v *backup.PlanVersion) string { return v.VersionID })
	if err != nil {
		return nil, err
	}
	out := struct {
		BackupPlanVersionsList []planMember
		NextToken              string `json:",omitempty"`
	}{BackupPlanVersionsList: []planMember{}, NextToken: next}
	for _, v := range pg {
		out.BackupPlanVersionsList = append(out.BackupPlanVersionsList, renderMember(v))
	}
	return out, nil
}

func planFromJSON(ctx context.Context, c *call) (any, error) {
	var in struct{ BackupPlanTemplateJson *string }
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if err := c.authorize(ctx, "*"); err != nil {
		return nil, err
	}
	if in.BackupPlanTemplateJson == nil {
		return nil, errf("MissingParameterValueException", 400, "Missing required parameter BackupPlanTemplateJson.")
	}
	p, err := backup.PlanFromJSON(*in.BackupPlanTemplateJson)
	if err != nil {
		return nil, err
	}
	return struct{ BackupPlan *backup.Plan }{p}, nil
}
