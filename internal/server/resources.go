package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/bulwark/bulwark/internal/adminapi"
	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/backupapi"
	"github.com/bulwark/bulwark/internal/headroom"
	"github.com/bulwark/bulwark/internal/httplimit"
	"github.com/bulwark/bulwark/internal/topology"
)

// Databases and directories live outside Bulwark: an account registers
// them here (package backup's Resources) and the Backup API then backs
// them up by their ARN like a bucket — StartBackupJob, selections by ARN
// or tag, ListProtectedResources. `bulwark resource` is the client.
//
// A registration belongs to the region it is made in, whose ARN it
// carries: the region whose machine reaches the database or holds the
// directory. A call naming an ARN of another region of the deployment is
// passed on there unchanged, as a bucket's calls are to its home region,
// and that region authorizes it; a registration or a list goes to the
// region the region query parameter names, else is the answering
// region's.
//
// The calls are authorized with Bulwark's own actions, which IAM users
// and roles of the account need: bulwark:RegisterResource and
// bulwark:ListResources on "*" (a registration's ARN does not exist until
// it is made: an EFS resource's ID is drawn then), bulwark:DescribeResource
// and bulwark:DeregisterResource on the resource's ARN. A resource of
// another account is not found, whoever asks.
const (
	actionRegisterResource   = "bulwark:RegisterResource"
	actionListResources      = "bulwark:ListResources"
	actionDescribeResource   = "bulwark:DescribeResource"
	actionDeregisterResource = "bulwark:DeregisterResource"
	// maxResourceRequest caps a registration's body, as the Backup API
	// caps its bodies.
	maxResourceRequest = 1 << 20
)

type resourcesAPI struct {
	r   *Region
	fwd *router
}

// resourcesRoutes are the calls that register, list, show and deregister
// resources.
func (r *Region) resourcesRoutes() []adminRoute {
	a := &resourcesAPI{r: r, fwd: r.router().(*router)}
	one := adminapi.ResourcesPath + "/{arn...}"
	return []adminRoute{
		{"POST " + adminapi.ResourcesPath, checked, []string{actionRegisterResource}, a.register},
		{"GET " + adminapi.ResourcesPath, checked, []string{actionListResources}, a.list},
		{"GET " + one, checked, []string{actionDescribeResource}, a.describe},
		{"DELETE " + one, checked, []string{actionDeregisterResource}, a.deregister},
	}
}

// register validates a registration with its type's validator and stores
// it, its password sealed.
func (a *resourcesAPI) register(w http.ResponseWriter, req *http.Request) {
	if a.elsewhere(w, req, req.URL.Query().Get("region")) {
		return
	}
	// Decided before the body is read: whoever may not register learns
	// nothing of how a registration must look.
	if err := a.r.authorize(req, actionRegisterResource, "*", nil); err != nil {
		writeDenied(w, err)
		return
	}
	in, ok := a.decode(w, req)
	if !ok {
		return
	}
	if in.ResourceType != "" && in.Name == "" {
		writeResourceError(w, http.StatusBadRequest, "MissingParameterValueException", "Missing required parameter Name.", "")
		return
	}
	ctx := req.Context()
	caller := callerOf(ctx)
	reg, err := a.r.Resources.Register(ctx, caller.AccountID, backup.Registration{
		Type: strings.ToUpper(in.ResourceType), Name: in.Name, Engine: in.Engine,
		Settings: in.Settings, Password: in.Password, Tags: in.Tags,
	})
	if err != nil {
		// A validator's refusal may quote what it was given; the password
		// is never shown or logged, whatever it says.
		a.fail(w, req, "register resource", redacted{err, in.Password})
		return
	}
	a.r.log.Info("registered resource", "arn", reg.ARN, "type", reg.Type, "name", reg.Name, "by", caller.ARN)
	writeJSON(w, http.StatusOK, resourceView(reg))
}

// decode reads a registration: at most maxResourceRequest bytes of one
// JSON object with no field the API does not know (a misspelt field would
// otherwise be dropped, and a password under another name kept as a
// setting). An empty body is an empty object.
func (a *resourcesAPI) decode(w http.ResponseWriter, req *http.Request) (*adminapi.RegisterResourceRequest, bool) {
	body, err := io.ReadAll(io.LimitReader(req.Body, maxResourceRequest+1))
	switch {
	case errors.Is(err, httplimit.ErrReadTimeout):
		writeRequestTimeout(w)
		return nil, false
	case err != nil:
		writeResourceError(w, http.StatusBadRequest, "InvalidRequestException", fmt.Sprintf("The request body could not be read: %v.", err), "")
		return nil, false
	case len(body) > maxResourceRequest:
		writeResourceError(w, http.StatusRequestEntityTooLarge, "RequestEntityTooLargeException",
			fmt.Sprintf("Request must be smaller than %d bytes.", maxResourceRequest), "")
		return nil, false
	}
	var in adminapi.RegisterResourceRequest
	if len(bytes.TrimSpace(body)) == 0 {
		return &in, true
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err = dec.Decode(&in)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("something follows the JSON object")
		}
	}
	if err != nil {
		code := "SerializationException"
		if strings.HasPrefix(err.Error(), "json: unknown field ") {
			code = "InvalidParameterValueException"
		}
		// encoding/json's errors name fields, types and at most one
		// character of the body: never a value.
		writeResourceError(w, http.StatusBadRequest, code, "The request body is not a registration: "+err.Error()+
			`. It is one JSON object: {"ResourceType":"RDS"|"EFS","Name":...,"Engine":...,"Settings":{...},"Password":...,"Tags":{...}}.`, "")
		return nil, false
	}
	return &in, true
}

// list lists the caller's account's registrations in the region, of one
// type when the type query parameter names it.
func (a *resourcesAPI) list(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	if a.elsewhere(w, req, q.Get("region")) {
		return
	}
	if err := a.r.authorize(req, actionListResources, "*", nil); err != nil {
		writeDenied(w, err)
		return
	}
	t := strings.ToUpper(q.Get("type"))
	if t != "" && t != backup.TypeRDS && t != backup.TypeEFS {
		writeResourceError(w, http.StatusBadRequest, "InvalidParameterValueException",
			fmt.Sprintf("Invalid resource type %q: RDS or EFS.", q.Get("type")), "")
		return
	}
	regs, err := a.r.Resources.List(req.Context(), callerOf(req.Context()).AccountID, t)
	if err != nil {
		a.fail(w, req, "list resources", err)
		return
	}
	out := adminapi.ResourceList{Region: a.r.cfg.Region, Resources: make([]adminapi.Resource, 0, len(regs))}
	for _, reg := range regs {
		out.Resources = append(out.Resources, resourceView(reg))
	}
	writeJSON(w, http.StatusOK, out)
}

// describe shows one registration.
func (a *resourcesAPI) describe(w http.ResponseWriter, req *http.Request) {
	if reg, ok := a.own(w, req, actionDescribeResource); ok {
		writeJSON(w, http.StatusOK, resourceView(reg))
	}
}

// deregister removes a registration and answers with what it was. The
// resource's recovery points stay, restorable; it is no longer backed up.
func (a *resourcesAPI) deregister(w http.ResponseWriter, req *http.Request) {
	reg, ok := a.own(w, req, actionDeregisterResource)
	if !ok {
		return
	}
	ctx := req.Context()
	if err := a.r.Resources.Deregister(ctx, reg.AccountID, reg.ARN); err != nil {
		a.fail(w, req, "deregister resource", err)
		return
	}
	a.r.log.Info("deregistered resource", "arn", reg.ARN, "by", callerOf(ctx).ARN)
	writeJSON(w, http.StatusOK, resourceView(reg))
}

// own returns the registration the request's path names, once the caller
// is authorized to do action on it. Otherwise it has answered the
// request: passed it on to the ARN's region, or refused it. Another
// account's ARN is answered as one that is not registered.
func (a *resourcesAPI) own(w http.ResponseWriter, req *http.Request, action string) (*backup.Registered, bool) {
	arn := req.PathValue("arn")
	if arn == "" {
		writeResourceError(w, http.StatusBadRequest, "MissingParameterValueException",
			"Missing the resource's ARN: "+adminapi.ResourcesPath+"/ARN, path-escaped.", "")
		return nil, false
	}
	if !backup.OwnsRDS(arn) && !backup.OwnsEFS(arn) {
		writeResourceError(w, http.StatusBadRequest, "InvalidParameterValueException", fmt.Sprintf(
			"Invalid resource ARN %q: arn:aws:rds:REGION:ACCOUNT:db:NAME for a database, arn:aws:elasticfilesystem:REGION:ACCOUNT:file-system/fs-ID for a directory.", arn), "")
		return nil, false
	}
	f := strings.SplitN(arn, ":", 6) // arn:aws:SERVICE:REGION:ACCOUNT:...
	region, account := f[3], f[4]
	ctx := req.Context()
	if account != callerOf(ctx).AccountID {
		writeNotRegistered(w, arn)
		return nil, false
	}
	if a.elsewhere(w, req, region) {
		return nil, false
	}
	if err := a.r.authorize(req, action, arn, nil); err != nil {
		writeDenied(w, err)
		return nil, false
	}
	reg, err := a.r.Resources.Get(ctx, account, arn)
	if err != nil {
		a.fail(w, req, "read resource", err)
		return nil, false
	}
	return reg, true
}

// elsewhere passes req on to region when that is another region of the
// deployment, and reports whether it answered req (passed it on, or
// refused a region the deployment has not). A call passed on once is not
// passed on again: it is refused if it is not for this region.
func (a *resourcesAPI) elsewhere(w http.ResponseWriter, req *http.Request, region string) bool {
	if region == "" || region == a.r.cfg.Region {
		return false
	}
	if !slices.Contains(a.r.cfg.Topology.Names(), region) {
		writeResourceError(w, http.StatusBadRequest, "InvalidParameterValueException",
			fmt.Sprintf("Region %s is not part of the deployment (%s).", region, regionList(a.r.cfg.Topology.Names())), "")
		return true
	}
	if req.Header.Get(forwardedHeader) != "" {
		writeResourceError(w, http.StatusBadRequest, "InvalidRequestException",
			fmt.Sprintf("This is region %s; the call is for region %s.", a.r.cfg.Region, region), "")
		return true
	}
	decided(req.Context()) // the region it goes to authorizes it
	_, err := a.fwd.forward(w, req, "", region)
	switch {
	case err == nil:
	case errors.Is(err, topology.ErrRegionUnreachable):
		writeResourceError(w, http.StatusServiceUnavailable, "ServiceUnavailableException",
			fmt.Sprintf("Region %s did not answer; try again later.", region), "")
	case errors.Is(err, httplimit.ErrReadTimeout):
		writeRequestTimeout(w)
	case req.Context().Err() != nil:
	default:
		a.r.log.Error("resources API: forward", "region", region, "err", err)
		writeResourceError(w, http.StatusInternalServerError, "ServiceUnavailableException",
			fmt.Sprintf("Internal error passing the call on to region %s (logged).", region), "")
	}
	return true
}

// fail answers an error of the store or a validator: the backup package's
// kinds with AWS Backup's codes (ResourceNotFoundException as a 404),
// anything else as a 500 whose cause is logged, not shown.
func (a *resourcesAPI) fail(w http.ResponseWriter, req *http.Request, what string, err error) {
	if code, ok := backupapi.Exception(err); ok {
		status := http.StatusBadRequest
		if code == "ResourceNotFoundException" {
			status = http.StatusNotFound
		}
		msg, arn := err.Error(), ""
		var be *backup.Error
		if errors.As(err, &be) {
			msg, arn = redact(be.Message, err), be.ARN
		}
		writeResourceError(w, status, code, msg, arn)
		return
	}
	var le *headroom.Error
	switch {
	case errors.As(err, &le):
		writeResourceError(w, http.StatusServiceUnavailable, "ServiceUnavailableException", le.Message(), "")
	case req.Context().Err() != nil:
		// The client is gone; nobody reads the answer.
	default:
		a.r.log.Error("resources API", "op", what, "err", err.Error())
		writeResourceError(w, http.StatusInternalServerError, "ServiceUnavailableException",
			fmt.Sprintf("%s: internal error in region %s (logged there).", what, a.r.cfg.Region), "")
	}
}

// redacted is an error whose text never shows a secret it may quote.
type redacted struct {
	err    error
	secret string
}

func (e redacted) Error() string { return e.redact(e.err.Error()) }
func (e redacted) Unwrap() error { return e.err }

func (e redacted) redact(s string) string {
	if e.secret == "" {
		return s
	}
	return strings.ReplaceAll(s, e.secret, "(password)")
}

// redact removes from s the secret of the redacted error in err's chain,
// if there is one.
func redact(s string, err error) string {
	var r redacted
	if errors.As(err, &r) {
		return r.redact(s)
	}
	return s
}

func writeNotRegistered(w http.ResponseWriter, arn string) {
	writeResourceError(w, http.StatusNotFound, "ResourceNotFoundException", fmt.Sprintf("Resource %s is not registered.", arn), "")
}

func writeResourceError(w http.ResponseWriter, status int, code, msg, arn string) {
	writeJSON(w, status, adminapi.Error{Code: code, Message: msg, Arn: arn})
}

// resourceView is a registration as the API shows it: never its password,
// sealed or not.
func resourceView(reg *backup.Registered) adminapi.Resource {
	orEmpty := func(m map[string]string) map[string]string {
		if m == nil {
			return map[string]string{}
		}
		return maps.Clone(m)
	}
	return adminapi.Resource{
		ResourceArn: reg.ARN, ResourceType: reg.Type, Name: reg.Name, Engine: reg.Engine,
		Settings: orEmpty(reg.Settings), Tags: orEmpty(reg.Tags),
		CreationTime: reg.CreationTime.UTC(), HasPassword: reg.HasPassword(),
	}
}
