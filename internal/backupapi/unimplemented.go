// Generated from botocore's backup model (2018-11-15) by listing its
// operations; regenerate when the model grows.

package backupapi

// unimplemented lists the AWS Backup operations Bulwark does not serve
// yet, by method and URI template, so that a client calling one is told
// which operation it is rather than getting a bare 404.
var unimplemented = []struct{ method, uri, op string }{
	{"PUT", "/backup-vaults/{backupVaultName}/mpaApprovalTeam", "AssociateBackupVaultMpaApprovalTeam"},
	{"DELETE", "/legal-holds/{legalHoldId}", "CancelLegalHold"},
	{"POST", "/legal-holds/", "CreateLegalHold"},
	{"PUT", "/logically-air-gapped-backup-vaults/{backupVaultName}", "CreateLogicallyAirGappedBackupVault"},
	{"PUT", "/restore-access-backup-vaults", "CreateRestoreAccessBackupVault"},
	{"PUT", "/tiering-configurations", "CreateTieringConfiguration"},
	{"DELETE", "/backup-vaults/{backupVaultName}/access-policy", "DeleteBackupVaultAccessPolicy"},
	{"DELETE", "/backup-vaults/{backupVaultName}/notification-configuration", "DeleteBackupVaultNotifications"},
	{"DELETE", "/tiering-configurations/{tieringConfigurationName}", "DeleteTieringConfiguration"},
	{"GET", "/global-settings", "DescribeGlobalSettings"},
	{"GET", "/account-settings", "DescribeRegionSettings"},
	{"GET", "/scan/jobs/{ScanJobId}", "DescribeScanJob"},
	{"POST", "/backup-vaults/{backupVaultName}/mpaApprovalTeam", "DisassociateBackupVaultMpaApprovalTeam"},
	{"POST", "/backup-vaults/{backupVaultName}/recovery-points/{recoveryPointArn}/disassociate", "DisassociateRecoveryPoint"},
	{"DELETE", "/backup-vaults/{backupVaultName}/recovery-points/{recoveryPointArn}/parentAssociation", "DisassociateRecoveryPointFromParent"},
	{"GET", "/backup/plans/{backupPlanId}/toTemplate/", "ExportBackupPlanTemplate"},
	{"GET", "/backup/template/plans/{templateId}/toPlan", "GetBackupPlanFromTemplate"},
	{"GET", "/backup-vaults/{backupVaultName}/access-policy", "GetBackupVaultAccessPolicy"},
	{"GET", "/backup-vaults/{backupVaultName}/notification-configuration", "GetBackupVaultNotifications"},
	{"GET", "/legal-holds/{legalHoldId}/", "GetLegalHold"},
	{"GET", "/backup-vaults/{backupVaultName}/recovery-points/{recoveryPointArn}/index", "GetRecoveryPointIndexDetails"},
	{"GET", "/restore-jobs/{restoreJobId}/metadata", "GetRestoreJobMetadata"},
	{"GET", "/tiering-configurations/{tieringConfigurationName}", "GetTieringConfiguration"},
	{"GET", "/audit/backup-job-summaries", "ListBackupJobSummaries"},
	{"GET", "/backup/template/plans", "ListBackupPlanTemplates"},
	{"GET", "/audit/copy-job-summaries", "ListCopyJobSummaries"},
	{"GET", "/indexes/recovery-point/", "ListIndexedRecoveryPoints"},
	{"GET", "/legal-holds/", "ListLegalHolds"},
	{"GET", "/legal-holds/{legalHoldId}/recovery-points", "ListRecoveryPointsByLegalHold"},
	{"GET", "/logically-air-gapped-backup-vaults/{backupVaultName}/restore-access-backup-vaults/", "ListRestoreAccessBackupVaults"},
	{"GET", "/audit/restore-job-summaries", "ListRestoreJobSummaries"},
	{"GET", "/audit/scan-job-summaries", "ListScanJobSummaries"},
	{"GET", "/scan/jobs", "ListScanJobs"},
	{"GET", "/tiering-configurations/", "ListTieringConfigurations"},
	{"PUT", "/backup-vaults/{backupVaultName}/access-policy", "PutBackupVaultAccessPolicy"},
	{"PUT", "/backup-vaults/{backupVaultName}/notification-configuration", "PutBackupVaultNotifications"},
	{"DELETE", "/logically-air-gapped-backup-vaults/{backupVaultName}/restore-access-backup-vaults/{restoreAccessBackupVaultArn}", "RevokeRestoreAccessBackupVault"},
	{"PUT", "/scan/job", "StartScanJob"},
	{"PUT", "/global-settings", "UpdateGlobalSettings"},
	{"POST", "/backup-vaults/{backupVaultName}/recovery-points/{recoveryPointArn}/index", "UpdateRecoveryPointIndexSettings"},
	{"PUT", "/account-settings", "UpdateRegionSettings"},
	{"PUT", "/tiering-configurations/{tieringConfigurationName}", "UpdateTieringConfiguration"},
}
