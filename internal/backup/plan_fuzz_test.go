package backup

import "testing"

// FuzzPlanFromJSON checks that no plan document makes validation panic,
// and that what it accepts it accepts again after a round trip.
func FuzzPlanFromJSON(f *testing.F) {
	f.Add(`{"BackupPlanName":"s3-daily-backup","Rules":[{"RuleName":"daily-s3-backup","TargetBackupVaultName":"Default","ScheduleExpression":"cron(0 2 * * ? *)","StartWindowMinutes":60,"CompletionWindowMinutes":180,"Lifecycle":{"DeleteAfterDays":30},"CopyActions":[{"DestinationBackupVaultArn":"arn:aws:backup:us-east-1:111122223333:backup-vault:Default","Lifecycle":{"DeleteAfterDays":90}}]}]}`)
	f.Add(`{"BackupPlanName":"p","Rules":[{"RuleName":"r","TargetBackupVaultName":"vv","ScheduleExpression":"rate(1 hours)","ScheduleExpressionTimezone":"Europe/Paris","Lifecycle":{"MoveToColdStorageAfterDays":1,"DeleteAfterDays":91}}]}`)
	f.Add(`{"BackupPlanName":"p","Rules":[{"RuleName":"r","TargetBackupVaultName":"vv","ScheduleExpressionTimezone":"../../etc/passwd"}]}`)
	f.Add(`{"Rules":null}`)
	f.Add(`{"BackupPlanName":"p","Rules":[{"RuleName":"r","TargetBackupVaultName":"vv","StartWindowMinutes":9223372036854775807}]}`)
	f.Fuzz(func(t *testing.T, doc string) {
		p, err := PlanFromJSON(doc)
		if err != nil {
			return
		}
		if err := ValidatePlan(p); err != nil {
			t.Fatalf("accepted plan fails validation again: %v", err)
		}
	})
}
