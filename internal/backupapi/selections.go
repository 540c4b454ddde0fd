package backupapi

import (
	"context"

	"github.com/bulwark/bulwark/internal/backup"
)

func createSelection(ctx context.Context, c *call) (any, error) {
	var in struct {
		BackupSelection  *backup.Selection
		CreatorRequestId string
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	id := c.r.PathValue("id")
	if err := c.authorize(ctx, c.h.cat.PlanARN(c.account, id)); err != nil {
		return nil, err
	}
	if in.BackupSelection == nil {
		return nil, errf("MissingParameterValueException", 400, "Missing required parameter BackupSelection.")
	}
	if err := in.BackupSelection.Validate(); err != nil {
		return nil, err
	}
	// The selection's role is handed to backup jobs, as AWS does it: the
	// caller must be allowed to pass it.
	if err := c.authorizeAction(ctx, "iam:PassRole", in.BackupSelection.IamRoleArn); err != nil {
		return nil, err
	}
	s, err := c.h.cat.CreateSelection(ctx, c.account, id, *in.BackupSelection, in.CreatorRequestId)
	if err != nil {
		return nil, err
	}
	return struct {
		SelectionId  string
		BackupPlanId string
		CreationDate *epoch
	}{s.SelectionID, s.BackupPlanID, ts(s.CreationDate)}, nil
}

func getSelection(ctx context.Context, c *call) (any, error) {
	id := c.r.PathValue("id")
	if err := c.authorize(ctx, c.h.cat.PlanARN(c.account, id)); err != nil {
		return nil, err
	}
	s, err := c.h.cat.GetSelection(ctx, c.account, id, c.r.PathValue("sid"))
	if err != nil {
		return nil, err
	}
	return struct {
		BackupSelection  backup.Selection
		SelectionId      string
		BackupPlanId     string
		CreationDate     *epoch
		CreatorRequestId string `json:",omitempty"`
	}{s.Selection, s.SelectionID, s.BackupPlanID, ts(s.CreationDate), s.CreatorRequestID}, nil
}

func listSelections(ctx context.Context, c *call) (any, error) {
	id := c.r.PathValue("id")
	if err := c.authorize(ctx, c.h.cat.PlanARN(c.account, id)); err != nil {
		return nil, err
	}
	ss, err := c.h.cat.ListSelections(ctx, c.account, id)
	if err != nil {
		return nil, err
	}
	pg, next, err := page(c, ss, func(s *backup.StoredSelection) string { return s.SelectionID })
	if err != nil {
		return nil, err
	}
	type member struct {
		SelectionId      string
		SelectionName    string
		BackupPlanId     string
		CreationDate     *epoch
		CreatorRequestId string `json:",omitempty"`
		IamRoleArn       string
	}
	out := struct {
		BackupSelectionsList []member
		NextToken            string `json:",omitempty"`
	}{BackupSelectionsList: []member{}, NextToken: next}
	for _, s := range pg {
		out.BackupSelectionsList = append(out.BackupSelectionsList, member{s.SelectionID, s.Selection.SelectionName, s.BackupPlanID, ts(s.CreationDate), s.CreatorRequestID, s.Selection.IamRoleArn})
	}
	return out, nil
}

func deleteSelection(ctx context.Context, c *call) (any, error) {
	id := c.r.PathValue("id")
	if err := c.authorize(ctx, c.h.cat.PlanARN(c.account, id)); err != nil {
		return nil, err
	}
	return nil, c.h.cat.DeleteSelection(ctx, c.account, id, c.r.PathValue("sid"))
}
