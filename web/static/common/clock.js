// The server's clock, as the Date header of its answers tells it. Countdowns and ages are
// computed against it, so a console on a computer whose clock is off (by seconds or by years)
// still counts an offer's 30 seconds right.

let offsetMs = 0;
let known = false;

/** Now, by the server's clock, in milliseconds since the epoch. */
export function serverNow() {
  return Date.now() + offsetMs;
}

/** Learn the server's clock from a response of ours (same origin, so Date is readable). */
export function learnServerClock(response) {
  const header = response.headers.get("Date");
  const at = header ? Date.parse(header) : Number.NaN;
  if (Number.isNaN(at)) return;
  // The header has whole seconds: the server's time was somewhere in the next second.
  const measured = at + 500 - Date.now();
  // Keep a known offset while new readings agree within the header's resolution.
  if (!known || Math.abs(measured - offsetMs) > 1500) {
    offsetMs = measured;
    known = true;
  }
}
