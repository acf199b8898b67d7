package gateway

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/weirhq/weir/internal/weirerr"
	"github.com/weirhq/weir/models"
	"github.com/weirhq/weir/oipgrpc"
)

// Triton's model repository extension, with weir's meaning: the repository
// is every model version stored in NATS; loading serves a stored version on
// this gateway, unloading stops serving it here, and neither deletes or
// stores anything (PUT and DELETE /v1/models do that, for every gateway).

// repoEntry is one version in the repository index (Triton's ModelIndex).
type repoEntry struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	State   string `json:"state"`
	Reason  string `json:"reason,omitempty"`
}

// tritonState names a version's state on this gateway as Triton does.
func tritonState(v models.VersionState) (state, reason string) {
	switch v.State {
	case models.Ready:
		return "READY", ""
	case models.Loading:
		return "LOADING", ""
	case models.Unloaded:
		return "UNAVAILABLE", "unloaded"
	}
	return "UNAVAILABLE", v.Error
}

// repositoryIndex lists every stored version (only those ready, if ready).
func (g *Gateway) repositoryIndex(ready bool) []repoEntry {
	out := []repoEntry{}
	for _, m := range g.models.List() {
		for _, v := range m.Versions {
			state, reason := tritonState(v)
			if ready && state != "READY" {
				continue
			}
			out = append(out, repoEntry{Name: m.Name, Version: v.Version, State: state, Reason: reason})
		}
	}
	return out
}

// repoVersions is the versions a load or unload of name means: the one
// its "version" parameter names, else all of them.
func (g *Gateway) repoVersions(name string, params map[string]any) ([]string, error) {
	if err := checkName("model", name); err != nil {
		return nil, err
	}
	version := ""
	for k, p := range params {
		switch k {
		case "version":
			s, ok := p.(string)
			if !ok {
				return nil, weirerr.Invalidf("parameter \"version\" must be a string, got %v", p)
			}
			if err := checkName("version", s); err != nil {
				return nil, err
			}
			version = s
		case "unload_dependents": // weir models have no dependents
		default:
			return nil, weirerr.Invalidf("parameter %q is not supported: weir loads stored versions only (\"version\" picks one; upload with PUT /v1/models/{name}/versions/{v})", k)
		}
	}
	m, ok := g.models.Model(name)
	if !ok {
		return nil, weirerr.NotFoundf("model %q not found", name)
	}
	var out []string
	for _, v := range m.Versions {
		if version == "" || v.Version == version {
			out = append(out, v.Version)
		}
	}
	if len(out) == 0 {
		return nil, weirerr.NotFoundf("model %q has no version %q", name, version)
	}
	return out, nil
}

// repositoryLoad serves name's stored versions (or the one named) here and
// returns once each is ready or has failed.
func (g *Gateway) repositoryLoad(name string, params map[string]any) error {
	versions, err := g.repoVersions(name, params)
	if err != nil {
		return err
	}
	var failed []string
	for _, v := range versions {
		if err := g.models.Load(name, v); err != nil {
			if weirerr.KindOf(err) != weirerr.Unavailable {
				return err
			}
			failed = append(failed, err.Error())
		}
	}
	if len(failed) > 0 {
		return weirerr.Unavailablef("%s", strings.Join(failed, "; "))
	}
	return nil
}

// repositoryUnload stops serving name's versions (or the one named) here;
// a version a route sends traffic to stays (409), as DELETE does.
func (g *Gateway) repositoryUnload(name string, params map[string]any) error {
	versions, err := g.repoVersions(name, params)
	if err != nil {
		return err
	}
	for _, v := range versions {
		if routes := g.modelRoutes(name, v); len(routes) > 0 {
			return weirerr.Conflictf("model %s@%s still gets traffic from route(s) %s: change those routes first", name, v, strings.Join(routes, ", "))
		}
	}
	for _, v := range versions {
		if err := g.models.Unload(name, v); err != nil {
			return err
		}
	}
	return nil
}

// repoRequest is the body of the HTTP repository calls (all optional).
type repoRequest struct {
	Ready      bool           `json:"ready"`
	Parameters map[string]any `json:"parameters"`
}

func readRepoRequest(c *fiber.Ctx) (repoRequest, error) {
	var r repoRequest
	if body := c.Request().Body(); len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &r); err != nil {
			return r, weirerr.Invalidf("the body is not a valid repository request: %w", err)
		}
	}
	return r, nil
}

// repoIndex serves POST /v2/repository/index.
func (g *Gateway) repoIndex(c *fiber.Ctx) error {
	r, err := readRepoRequest(c)
	if err != nil {
		return err
	}
	return writeJSON(c, g.repositoryIndex(r.Ready))
}

// repoLoad serves POST /v2/repository/models/{name}/load.
func (g *Gateway) repoLoad(c *fiber.Ctx) error {
	r, err := readRepoRequest(c)
	if err != nil {
		return err
	}
	if err := g.repositoryLoad(c.Params("name"), r.Parameters); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusOK)
}

// repoUnload serves POST /v2/repository/models/{name}/unload.
func (g *Gateway) repoUnload(c *fiber.Ctx) error {
	r, err := readRepoRequest(c)
	if err != nil {
		return err
	}
	if err := g.repositoryUnload(c.Params("name"), r.Parameters); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusOK)
}

var _ oipgrpc.Repository = grpcBackend{}

func (b grpcBackend) RepositoryIndex(ready bool) []oipgrpc.RepositoryEntry {
	idx := b.g.repositoryIndex(ready)
	out := make([]oipgrpc.RepositoryEntry, len(idx))
	for i, e := range idx {
		out[i] = oipgrpc.RepositoryEntry(e)
	}
	return out
}

func (b grpcBackend) RepositoryLoad(token, name string, params map[string]any) error {
	if err := b.authorizeAdmin(token); err != nil {
		return err
	}
	return b.g.repositoryLoad(name, params)
}

func (b grpcBackend) RepositoryUnload(token, name string, params map[string]any) error {
	if err := b.authorizeAdmin(token); err != nil {
		return err
	}
	return b.g.repositoryUnload(name, params)
}

// authorizeAdmin admits only the admin token, as the admin HTTP calls do.
func (b grpcBackend) authorizeAdmin(token string) error {
	if token == "" || !equalToken(b.g.adminToken)(token) {
		return weirerr.Unauthorizedf("repository load and unload need the admin token in authorization metadata (Bearer <token>)")
	}
	return nil
}
