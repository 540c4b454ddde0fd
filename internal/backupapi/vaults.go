package backupapi

import (
	"context"

	"github.com/bulwark/bulwark/internal/backup"
)

type vaultOut struct {
	BackupVaultName        string
	BackupVaultArn         string
	VaultType              string `json:",omitempty"`
	VaultState             string `json:",omitempty"`
	EncryptionKeyArn       string `json:",omitempty"`
	CreationDate           *epoch
	CreatorRequestId       string `json:",omitempty"`
	NumberOfRecoveryPoints int64
	Locked                 bool
	MinRetentionDays       *int64 `json:",omitempty"`
	MaxRetentionDays       *int64 `json:",omitempty"`
	LockDate               *epoch `json:",omitempty"`
}

func renderVault(v *backup.Vault) vaultOut {
	return vaultOut{
		BackupVaultName:        v.Name,
		BackupVaultArn:         v.ARN,
		VaultType:              "BACKUP_VAULT",
		VaultState:             "AVAILABLE",
		EncryptionKeyArn:       v.EncryptionKeyARN,
		CreationDate:           ts(v.CreationDate),
		CreatorRequestId:       v.CreatorRequestID,
		NumberOfRecoveryPoints: v.NumberOfRecoveryPoints,
		Locked:                 v.Locked,
		MinRetentionDays:       v.MinRetentionDays,
		MaxRetentionDays:       v.MaxRetentionDays,
		LockDate:               tsp(v.LockDate),
	}
}

func createVault(ctx context.Context, c *call) (any, error) {
	var in struct {
		BackupVaultTags  map[string]string
		EncryptionKeyArn string
		CreatorRequestId string
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	name := c.r.PathValue("name")
	if err := c.authorize(ctx, c.h.cat.VaultARN(c.account, name)); err != nil {
		return nil, err
	}
	v, err := c.h.cat.CreateVault(ctx, c.account, backup.CreateVaultInput{Name: name, EncryptionKeyARN: in.EncryptionKeyArn, CreatorRequestID: in.CreatorRequestId, Tags: in.BackupVaultTags})
	if err != nil {
		return nil, err
	}
	return struct {
		BackupVaultName string
		BackupVaultArn  string
		CreationDate    *epoch
	}{v.Name, v.ARN, ts(v.CreationDate)}, nil
}

func describeVault(ctx context.Context, c *call) (any, error) {
	name := c.r.PathValue("name")
	if err := c.authorize(ctx, c.h.cat.VaultARN(c.account, name)); err != nil {
		return nil, err
	}
	// Vaults are not shared between accounts yet: another account's
	// vault is one the caller cannot see.
	if acct := c.r.URL.Query().Get("backupVaultAccountId"); acct != "" && acct != c.account {
		return nil, errf("ResourceNotFoundException", 400, "Backup vault %s of account %s does not exist.", name, acct)
	}
	v, err := c.h.cat.DescribeVault(ctx, c.account, name)
	if err != nil {
		return nil, err
	}
	return renderVault(v), nil
}

func deleteVault(ctx context.Context, c *call) (any, error) {
	name := c.r.PathValue("name")
	if err := c.authorize(ctx, c.h.cat.VaultARN(c.account, name)); err != nil {
		return nil, err
	}
	return nil, c.h.cat.DeleteVault(ctx, c.account, name)
}

func listVaults(ctx context.Context, c *call) (any, error) {
	if err := c.authorize(ctx, "*"); err != nil {
		return nil, err
	}
	shared, err := c.boolQuery("shared")
	if err != nil {
		return nil, err
	}
	var vaults []*backup.Vault
	if typ := c.r.URL.Query().Get("vaultType"); (typ == "" || typ == "BACKUP_VAULT") && !shared {
		if vaults, err = c.h.cat.ListVaults(ctx, c.account); err != nil {
			return nil, err
		}
	}
	pg, next, err := page(c, vaults, func(v *backup.Vault) string { return v.Name })
	if err != nil {
		return nil, err
	}
	out := struct {
		BackupVaultList []vaultOut
		NextToken       string `json:",omitempty"`
	}{BackupVaultList: []vaultOut{}, NextToken: next}
	for _, v := range pg {
		out.BackupVaultList = append(out.BackupVaultList, renderVault(v))
	}
	return out, nil
}

func supportedResourceTypes(ctx context.Context, c *call) (any, error) {
	if err := c.authorize(ctx, "*"); err != nil {
		return nil, err
	}
	return struct{ ResourceTypes []string }{c.h.providers.Types()}, nil
}
