package gateway

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/weirhq/weir/internal/weirerr"
	"github.com/weirhq/weir/plugins"
)

// HTTP handlers.

func (g *Gateway) listPlugins(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"plugins": g.plugins.List()})
}

func pluginParams(c *fiber.Ctx) (name, version string, err error) {
	name, version = c.Params("name"), c.Params("version")
	if err := checkName("plugin", name); err != nil {
		return "", "", err
	}
	if err := checkName("version", version); err != nil {
		return "", "", err
	}
	return name, version, nil
}

// putPlugin stores a Wasm plugin version. Optional query limits:
// memory_mb (whole MiB) and timeout (a Go duration such as 20ms).
func (g *Gateway) putPlugin(c *fiber.Ctx) error {
	name, version, err := pluginParams(c)
	if err != nil {
		return err
	}
	var l plugins.Limits
	if s := c.Query("memory_mb"); s != "" {
		mb, err := strconv.ParseUint(s, 10, 16)
		if err != nil || mb == 0 || mb > 4096 {
			return weirerr.Invalidf("memory_mb=%q: expected a whole number of MiB from 1 to 4096", s)
		}
		l.MemoryPages = uint32(mb * 16) // 16 pages of 64 KiB per MiB
	}
	if s := c.Query("timeout"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 || d > time.Minute {
			return weirerr.Invalidf("timeout=%q: expected a duration such as 20ms, at most 1m", s)
		}
		l.Timeout = d
	}
	wasm, err := g.readUpload(c, "plugin")
	if err != nil {
		return err
	}
	m, created, err := g.plugins.Upload(c.UserContext(), name, version, wasm, l)
	if err != nil {
		return err
	}
	a := fiber.Map{"name": name, "version": version, "sha256": m.Blob, "size": m.Size, "created": created,
		"message": fmt.Sprintf("plugin %s@%s uploaded and loaded", name, version)}
	if !created {
		a["message"] = fmt.Sprintf("plugin %s@%s is already there with these bytes: nothing changed", name, version)
		if l != (plugins.Limits{}) {
			a["message"] = fmt.Sprintf("plugin %s@%s is already there with these bytes: its limits are the ones given now", name, version)
		}
		return c.JSON(a)
	}
	return c.Status(fiber.StatusCreated).JSON(a)
}

func (g *Gateway) deletePlugin(c *fiber.Ctx) error {
	name, version, err := pluginParams(c)
	if err != nil {
		return err
	}
	routes := g.routes.PluginReferences(name, version)
	if g.plugins.Versions(name) == 1 { // routes on "latest" break without it
		routes = append(routes, g.routes.PluginReferences(name, "latest")...)
	}
	if len(routes) > 0 {
		return weirerr.Conflictf("plugin %s@%s is used by route(s) %s: change those routes first", name, version, strings.Join(routes, ", "))
	}
	if err := g.plugins.Delete(c.UserContext(), name, version); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
