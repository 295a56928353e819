package webui

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/nominacl/consolidation/coordinator/internal/engine"
	"github.com/nominacl/consolidation/pkg/domain"
)

// The actions: start a closing, cancel a run, retry a run's failed employees.
// Each is what its gRPC method does (Consolidate, CancelConsolidation), allowed
// only to an identity the policy allows that method, and audited as the gRPC
// edge audits it. A post must come from the dashboard's own pages: cross-origin
// posts are refused by http.CrossOriginProtection (Sec-Fetch-Site, Origin), and
// the form's token must equal the caller's token cookie.

const csrfCookie = "ui_csrf"

// csrfToken is the caller's token, set as a cookie when they have none yet.
func csrfToken(w http.ResponseWriter, r *http.Request) string {
	if tok := cookieToken(r); tok != "" {
		return tok
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: tok, Path: "/ui/", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode})
	return tok
}

// cookieToken is the caller's form token from its cookie; "" when it has none.
func cookieToken(r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) == 43 {
		return c.Value
	}
	return ""
}

// validToken reports whether the posted form carries the caller's token.
func validToken(r *http.Request) bool {
	c, err := r.Cookie(csrfCookie)
	if err != nil || c.Value == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostFormValue("csrf"))) == 1
}

// authorizeAction checks the token and the caller's permission; false means the
// refusal was written.
func (d *Dashboard) authorizeAction(w http.ResponseWriter, r *http.Request, c caller, method string, allowed bool) bool {
	switch {
	case !validToken(r):
		d.audit(r, c, method, 0, 0, "csrf_refused")
		d.message(w, r, http.StatusForbidden, "Acción rechazada", "El formulario no trae el token de esta sesión. Recargue la página e intente de nuevo.")
		return false
	case !allowed:
		d.audit(r, c, method, 0, 0, "permission_denied")
		who := "Sin identidad, el panel es de solo lectura."
		if c.Identity != "" {
			who = c.Identity + " no tiene permiso para esta acción."
		}
		d.message(w, r, http.StatusForbidden, "Acción no permitida", who)
		return false
	}
	return true
}

func (d *Dashboard) audit(r *http.Request, c caller, method string, closingID, runID int64, outcome string) {
	d.logger.InfoContext(r.Context(), "audit", "method", method, "identity", c.Identity, "via", "dashboard/"+c.Via,
		"closing_id", closingID, "consolidation_id", runID, "outcome", outcome)
}

func (d *Dashboard) startAction(w http.ResponseWriter, r *http.Request) {
	c := d.callerOf(r)
	if !d.authorizeAction(w, r, c, methodStart, c.CanStart) {
		return
	}
	closingID, err1 := strconv.ParseInt(r.PostFormValue("closing_id"), 10, 64)
	chunkSize, err2 := optionalInt(r.PostFormValue("chunk_size"))
	mode := domain.ModeFull
	if r.PostFormValue("mode") == "retry_failed" {
		mode = domain.ModeRetryFailed
	}
	if err := errors.Join(err1, err2); err != nil || closingID <= 0 {
		d.message(w, r, http.StatusBadRequest, "Datos inválidos", "Indique el número de cierre (y un tamaño de chunk, si lo da) como enteros positivos.")
		return
	}
	d.start(w, r, c, engine.StartRequest{ClosingID: closingID, Mode: mode, ChunkSize: chunkSize,
		Force: r.PostFormValue("force") == "on", RequestedBy: c.Identity})
}

func (d *Dashboard) retryAction(w http.ResponseWriter, r *http.Request) {
	c := d.callerOf(r)
	if !d.authorizeAction(w, r, c, methodStart, c.CanStart) {
		return
	}
	runID, ok := d.pathID(w, r, "id")
	if !ok {
		return
	}
	rep, err := d.engine.Get(r.Context(), engine.Ref{RunID: runID})
	if err != nil {
		d.engineError(w, r, err)
		return
	}
	d.start(w, r, c, engine.StartRequest{ClosingID: rep.Run.ClosingID, Mode: domain.ModeRetryFailed, RequestedBy: c.Identity})
}

func (d *Dashboard) start(w http.ResponseWriter, r *http.Request, c caller, req engine.StartRequest) {
	run, err := d.engine.Start(r.Context(), req)
	if err != nil {
		d.audit(r, c, methodStart, req.ClosingID, 0, "refused")
		d.engineError(w, r, err)
		return
	}
	d.audit(r, c, methodStart, req.ClosingID, run.ID, "ok")
	http.Redirect(w, r, fmt.Sprintf("/ui/runs/%d", run.ID), http.StatusSeeOther)
}

func (d *Dashboard) cancelAction(w http.ResponseWriter, r *http.Request) {
	c := d.callerOf(r)
	if !d.authorizeAction(w, r, c, methodCancel, c.CanCancel) {
		return
	}
	runID, ok := d.pathID(w, r, "id")
	if !ok {
		return
	}
	rep, err := d.engine.Cancel(r.Context(), engine.Ref{RunID: runID}, c.Identity)
	if err != nil {
		d.audit(r, c, methodCancel, 0, runID, "refused")
		d.engineError(w, r, err)
		return
	}
	d.views.forget(runID)
	d.audit(r, c, methodCancel, rep.Run.ClosingID, runID, "ok")
	http.Redirect(w, r, fmt.Sprintf("/ui/runs/%d", runID), http.StatusSeeOther)
}

func optionalInt(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err == nil && n < 0 {
		err = errors.New("negative")
	}
	return n, err
}
