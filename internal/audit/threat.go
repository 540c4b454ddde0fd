package audit

// Threat is what a resource must survive. The names are part of the
// audit's JSON and of the deployment's policy; they never change once
// shipped.
type Threat string

const (
	// RegionOutage: the resource's home region is down for hours; the
	// data must be readable, or restorable, in another region.
	RegionOutage Threat = "region-outage"
	// AccidentalDeletion: a person or program deletes or overwrites the
	// data by mistake; an earlier state must be recoverable.
	AccidentalDeletion Threat = "accidental-deletion"
	// Corruption: ransomware or a writer with valid credentials destroys
	// the data, and replication copies the destruction faithfully; a
	// state from before it must be recoverable and beyond that writer's
	// reach.
	Corruption Threat = "corruption"
	// CredentialLoss: the account's credentials are lost or taken; a copy
	// must survive that no credential of the account can delete (another
	// account's vault, or a vault lock).
	CredentialLoss Threat = "credential-loss"
)

// Threats lists every threat in the order the audit prints them.
var Threats = []Threat{RegionOutage, AccidentalDeletion, Corruption, CredentialLoss}
