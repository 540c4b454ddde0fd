// Package audit answers the question Bulwark exists for: is each resource
// protected if a region goes down, if someone deletes or overwrites it, if
// a writer with valid credentials destroys it, if the account's
// credentials are lost — by what, with which measured recovery point and
// recovery time objectives, and at what monthly cost.
//
// The audit reads facts that the replication engine and the backup
// service of every region report; it names no resource type, so every
// type a backup provider knows is covered. It imports no HTTP: the server
// gathers the facts, from the surviving regions when one is down, and
// serves the answer.
package audit
