// Active work time: what a page reports as work_seconds with each save or decision it posts.
//
// Time between two pointer or keyboard inputs counts as work; a gap longer than the idle gap
// counts as nothing (the person was away). What accumulated since the last acknowledged post
// goes with the next one: begin() fixes the report of a request (a retry under the same
// Idempotency-Key sends the same number), acknowledge() takes it off once the server took it,
// and a refused post keeps it for the next try. The server logs each report in its work log,
// which prices the program from measured time (docs/cost.md).

/** UX: a minute without input is a break; the browser tests shorten it through an init script. */
export const IDLE_GAP_MS = 60_000;
/** The API's bound on one report (work_seconds in [0, 86400]). */
export const MAX_WORK_SECONDS = 86_400;
const INPUTS = ["pointerdown", "pointermove", "keydown", "wheel"];

export class ActiveTime {
  /**
   * Count active time from the inputs on `target` (the window: every input of the page).
   * @param {{idleGapMs?: number, target?: EventTarget}} options
   */
  constructor({ idleGapMs = Number(window.__labelgateIdleGapMs ?? IDLE_GAP_MS), target = window } = {}) {
    this.idleGapMs = idleGapMs;
    this.lastInput = null;
    this.pendingMs = 0; // active time not yet acknowledged by the server
    this.sentMs = 0; // the part of it the request in flight reports
    const listener = () => this.note(performance.now());
    for (const type of INPUTS) target.addEventListener(type, listener, { capture: true, passive: true });
  }

  /** One input at `now` (ms, performance.now()'s clock). */
  note(now) {
    if (this.lastInput !== null) {
      const gap = now - this.lastInput;
      if (gap > 0 && gap <= this.idleGapMs) this.pendingMs += gap;
    }
    this.lastInput = now;
  }

  /** Fix what a new request reports: everything pending so far. */
  begin() {
    this.sentMs = this.pendingMs;
    return this.seconds();
  }

  /** The request's report in seconds, to 0.1 s, within the API's bound. */
  seconds() {
    return Math.min(Math.round(this.sentMs / 100) / 10, MAX_WORK_SECONDS);
  }

  /** The server took the report: what came after begin() stays pending. */
  acknowledge() {
    this.pendingMs = Math.max(0, this.pendingMs - this.sentMs);
    this.sentMs = 0;
  }
}
