package iamapi

import "github.com/bulwark/bulwark/internal/iam"

// iamOps are the IAM actions Bulwark answers. Each is authorized as
// "iam:"+Action on its resource before it runs.
var iamOps = map[string]operation{
	"CreateUser": {required: []string{"UserName"}, resource: newEntityARN("user", "UserName"), run: createUser},
	"GetUser":    {resource: targetUserARN, run: getUser},
	"ListUsers":  {resource: anyResource, run: listUsers},
	"DeleteUser": {required: []string{"UserName"}, resource: namedUserARN, run: deleteUser},

	"CreateAccessKey": {resource: targetUserARN, run: createAccessKey},
	"ListAccessKeys":  {resource: targetUserARN, run: listAccessKeys},
	"UpdateAccessKey": {required: []string{"AccessKeyId", "Status"}, resource: targetUserARN, run: updateAccessKey},
	"DeleteAccessKey": {required: []string{"AccessKeyId"}, resource: targetUserARN, run: deleteAccessKey},

	"PutUserPolicy":    {required: []string{"UserName", "PolicyName", "PolicyDocument"}, resource: namedUserARN, run: putInlinePolicy(iam.EntityUser)},
	"GetUserPolicy":    {required: []string{"UserName", "PolicyName"}, resource: namedUserARN, run: getInlinePolicy(iam.EntityUser)},
	"DeleteUserPolicy": {required: []string{"UserName", "PolicyName"}, resource: namedUserARN, run: deleteInlinePolicy(iam.EntityUser)},
	"ListUserPolicies": {required: []string{"UserName"}, resource: namedUserARN, run: listInlinePolicies(iam.EntityUser)},

	"CreateRole":             {required: []string{"RoleName", "AssumeRolePolicyDocument"}, resource: newEntityARN("role", "RoleName"), run: createRole},
	"GetRole":                {required: []string{"RoleName"}, resource: namedRoleARN, run: getRole},
	"DeleteRole":             {required: []string{"RoleName"}, resource: namedRoleARN, run: deleteRole},
	"ListRoles":              {resource: anyResource, run: listRoles},
	"UpdateAssumeRolePolicy": {required: []string{"RoleName", "PolicyDocument"}, resource: namedRoleARN, run: updateAssumeRolePolicy},
	"PutRolePolicy":          {required: []string{"RoleName", "PolicyName", "PolicyDocument"}, resource: namedRoleARN, run: putInlinePolicy(iam.EntityRole)},
	"GetRolePolicy":          {required: []string{"RoleName", "PolicyName"}, resource: namedRoleARN, run: getInlinePolicy(iam.EntityRole)},
	"DeleteRolePolicy":       {required: []string{"RoleName", "PolicyName"}, resource: namedRoleARN, run: deleteInlinePolicy(iam.EntityRole)},
	"ListRolePolicies":       {required: []string{"RoleName"}, resource: namedRoleARN, run: listInlinePolicies(iam.EntityRole)},

	"CreatePolicy": {required: []string{"PolicyName", "PolicyDocument"}, resource: newEntityARN("policy", "PolicyName"), run: createPolicy},
	"GetPolicy":    {required: []string{"PolicyArn"}, resource: policyARNParam, run: getPolicy},
	"DeletePolicy": {required: []string{"PolicyArn"}, resource: policyARNParam, run: deletePolicy},
	"ListPolicies": {resource: anyResource, run: listPolicies},

	"AttachUserPolicy":         {required: []string{"UserName", "PolicyArn"}, resource: namedUserARN, run: attachPolicy(iam.EntityUser)},
	"DetachUserPolicy":         {required: []string{"UserName", "PolicyArn"}, resource: namedUserARN, run: detachPolicy(iam.EntityUser)},
	"ListAttachedUserPolicies": {required: []string{"UserName"}, resource: namedUserARN, run: listAttachedPolicies(iam.EntityUser)},
	"AttachRolePolicy":         {required: []string{"RoleName", "PolicyArn"}, resource: namedRoleARN, run: attachPolicy(iam.EntityRole)},
	"DetachRolePolicy":         {required: []string{"RoleName", "PolicyArn"}, resource: namedRoleARN, run: detachPolicy(iam.EntityRole)},
	"ListAttachedRolePolicies": {required: []string{"RoleName"}, resource: namedRoleARN, run: listAttachedPolicies(iam.EntityRole)},
}

// stsOps are the STS actions Bulwark answers.
var stsOps = map[string]operation{
	"GetCallerIdentity": {run: getCallerIdentity},
	"AssumeRole":        {required: []string{"RoleArn", "RoleSessionName"}, run: assumeRole},
}
