// Package adminapi holds the requests and answers of Bulwark's own admin
// API, under /_bulwark/: the one definition of each wire shape, shared by
// the server that answers and the CLI (and console) that call.
package adminapi

import (
	"fmt"
	"time"
)

// ResourcesPath is where resources that live outside Bulwark (databases,
// directories) are registered for backup, listed and deregistered:
//
//	POST   ResourcesPath            RegisterResourceRequest → Resource
//	GET    ResourcesPath[?type=T]   → ResourceList
//	GET    ResourcesPath/ARN        → Resource
//	DELETE ResourcesPath/ARN        → Resource (the one deregistered)
//
// ARN is path-escaped (url.PathEscape: an EFS ARN holds a slash). A
// region query parameter passes the call on to that region of the
// deployment; a call that names an ARN goes to the ARN's region.
const ResourcesPath = "/_bulwark/v1/resources"

// RegisterResourceRequest is the body of a registration.
type RegisterResourceRequest struct {
	// ResourceType is RDS (a database) or EFS (a directory).
	ResourceType string
	Name         string
	// Engine is an RDS resource's: postgres, mysql, mariadb or sqlite.
	Engine string `json:",omitempty"`
	// Settings are what the resource's provider needs to reach it, under
	// the keys of package backup (Host, Port, User, Database, Path,
	// PreBackupCommand, PostBackupCommand). Never a password.
	Settings map[string]string `json:",omitempty"`
	// Password is sealed by the server and never shown again.
	Password string            `json:",omitempty"`
	Tags     map[string]string `json:",omitempty"`
}

// String shows the request without its password, should it ever be
// printed or logged.
func (r RegisterResourceRequest) String() string {
	pw := ""
	if r.Password != "" {
		pw = " Password:(set)"
	}
	return fmt.Sprintf("{ResourceType:%s Name:%q Engine:%s Settings:%v Tags:%v%s}",
		r.ResourceType, r.Name, r.Engine, r.Settings, r.Tags, pw)
}

// Resource is a registered resource as the API shows it. It has no field
// for the password, in any form: HasPassword says whether one is kept.
type Resource struct {
	ResourceArn  string
	ResourceType string
	Name         string
	Engine       string `json:",omitempty"`
	Settings     map[string]string
	Tags         map[string]string
	CreationTime time.Time
	HasPassword  bool
}

// ResourceList answers a list call: the caller's account's resources
// registered in Region, in ARN order (an account registers at most 1,000
// per region, so there is one page).
type ResourceList struct {
	Region    string
	Resources []Resource
}

// Error is the body of an error answer of the admin API. The resources
// calls answer with AWS Backup's codes (ResourceNotFoundException,
// AlreadyExistsException, InvalidParameterValueException, ...); Arn names
// the resource that exists already, for AlreadyExistsException.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Arn     string `json:"arn,omitempty"`
}
