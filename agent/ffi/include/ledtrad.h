/*
 * ledtrad: the on-device offer agent's C API.
 *
 * Start an agent from its TOML config with ledtrad_agent_start, drive it from any thread, and
 * stop it with ledtrad_agent_stop. Every function returns a ledtrad_result; on failure,
 * ledtrad_last_error() says on the same thread what was wrong and how to fix it. Bodies are
 * the local HTTP API's JSON. Strings passed in are NUL-terminated UTF-8 and only read during
 * the call; answers are written into buffers the caller owns. Live events come to a callback
 * on a thread of the agent's. Linking, threads and memory in full: docs/c-api.md.
 */

#ifndef LEDTRAD_H
#define LEDTRAD_H

/* Made by cbindgen from agent/ffi/src; do not edit. Refresh: LEDTRAD_BLESS_HEADER=1 cargo test -p ledtrad-ffi --test header */

#include <stddef.h>
#include <stdint.h>

// What a call of the C API came to. Every function but `ledtrad_version` and
// `ledtrad_last_error` returns one; on anything but `LEDTRAD_RESULT_OK`, `ledtrad_last_error()` says
// what was wrong and how to fix it.
typedef enum {
  // The call did what it says.
  LEDTRAD_RESULT_OK = 0,
  // An argument is wrong: a NULL pointer, text that is not UTF-8, JSON that is not the body
  // asked for, an unknown moment or purpose, a value the agent does not take.
  LEDTRAD_RESULT_INVALID_ARGUMENT = 1,
  // The agent's config could not be read or has a bad value.
  LEDTRAD_RESULT_CONFIG = 2,
  // The agent could not start (its database, its local API's address, its runtime).
  LEDTRAD_RESULT_START = 3,
  // The agent has stopped.
  LEDTRAD_RESULT_STOPPED = 4,
  // The answer does not fit the buffer: `*needed` holds the size it needs, with its NUL.
  LEDTRAD_RESULT_BUFFER_TOO_SMALL = 5,
  // The agent refused the request as it stands: feedback on a decision that is unknown,
  // too old, showed nothing or already has its answer.
  LEDTRAD_RESULT_REFUSED = 6,
  // The agent's storage could not be written or read; nothing was changed.
  LEDTRAD_RESULT_STORAGE = 7,
  // A fault inside the library (a panic, caught); the message says where.
  LEDTRAD_RESULT_INTERNAL = 8,
} ledtrad_result;

// A running agent, for C callers (an opaque `ledtrad_agent *`).
typedef struct ledtrad_agent ledtrad_agent;

// The function the agent calls with each live event: its name (`offer`, `consent`,
// `catalogue`, or `missed`), its data as JSON, and the `user_data` given with it.
typedef void (*ledtrad_event_callback)(const char *event_name, const char *json, void *user_data);

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

// The library's version, e.g. "0.1.0" (a static string; do not free it).
const char *ledtrad_version(void);

// The message of the last failed call on the calling thread: what was wrong, naming the bad
// value, and what fixes it. "" when no call on this thread has failed. Owned by the library:
// valid until the next failed call on this thread; copy it to keep it.
const char *ledtrad_last_error(void);

// Reads and checks the agent's TOML config at `config_path` (as `ledtrad-agent run` does) and
// starts the agent with its own threads: it connects to the broker, follows its fleet's
// catalogue and, if the config says so, serves its local HTTP API. On success `*out` is the
// handle, to be given to `ledtrad_agent_stop` once; on failure `*out` is NULL.
//
// # Safety
// `config_path` is NULL or a NUL-terminated string; `out` is NULL or writable.
ledtrad_result ledtrad_agent_start(const char *config_path, ledtrad_agent **out);

// Stops the agent: no event callback runs once this returns; the agent publishes its offline
// status, closes its database and its threads end; the handle is freed. NULL is a no-op.
// Must not be called from inside the event callback (that is refused with
// `LEDTRAD_RESULT_INVALID_ARGUMENT`), nor while another thread still uses the handle.
//
// # Safety
// `agent` is NULL or a handle from `ledtrad_agent_start` not yet stopped; no other thread
// uses it during or after this call.
ledtrad_result ledtrad_agent_stop(ledtrad_agent *agent);

// Feeds sensor signals, the same JSON as the local API's `POST /v1/signals`: one signal
// (`{"feature": "fridge.butter.level", "value": 0.08}`) or a batch (`{"signals": [...]}`).
// A signal may raise a moment; what it shows comes as an `offer` event.
//
// # Safety
// `agent` is NULL or a live handle; `json` is NULL or a NUL-terminated string.
ledtrad_result ledtrad_signals(const ledtrad_agent *agent, const char *json);

// Decides what to show at `moment` (`door_opened`, `inventory_low`, `book_finished`,
// `reader_sleep`, `screen_woken`) and writes the answer as JSON into `buf`, the same body as
// the local API's `GET /v1/offer`: `{"moment", "decision", "offer"?, "prompt"?}`; with nothing
// to show, only the moment and the decision. `*needed` (when `needed` is not NULL) is set to
// the answer's size with its NUL. When `len` is too small the result is
// `LEDTRAD_RESULT_BUFFER_TOO_SMALL`: call again at once on the same thread with a buffer of `*needed`
// bytes and you get the same decision, not a second one (any other call in between drops it).
//
// # Safety
// `agent` is NULL or a live handle; `moment` is NULL or a NUL-terminated string; `buf` is
// NULL or writable for `len` bytes; `needed` is NULL or writable.
ledtrad_result ledtrad_offer(const ledtrad_agent *agent, const char *moment, char *buf, size_t len, size_t *needed);

// Records what the person did with a shown offer, the same JSON as the local API's
// `POST /v1/feedback`: `{"decision": 12, "kind": "accepted"}` (or `"dismissed"`,
// `"not_for_me"`). A decision that is unknown, showed nothing or already has its answer is
// `LEDTRAD_RESULT_REFUSED`.
//
// # Safety
// `agent` is NULL or a live handle; `json` is NULL or a NUL-terminated string.
ledtrad_result ledtrad_feedback(const ledtrad_agent *agent, const char *json);

// Writes the consent in force as JSON into `buf` (the local API's `GET /v1/consent`: the
// purposes `personalise`, `request`, `measure`, `improve` as booleans, the household's people
// and who is present). Buffer rules as for `ledtrad_offer`; asking again is harmless.
//
// # Safety
// `agent` is NULL or a live handle; `buf` is NULL or writable for `len` bytes; `needed` is
// NULL or writable.
ledtrad_result ledtrad_consent(const ledtrad_agent *agent, char *buf, size_t len, size_t *needed);

// Grants or revokes `purpose` (`personalise`, `request`, `measure`, `improve`) for the
// device's owner, the same JSON as the local API's `PUT /v1/consent/{purpose}`:
// `{"granted": true, "text_version": "2026-11", "source": "device_ui"}`. In force, and what a
// revocation takes away purged, before this returns; a `consent` event follows.
//
// # Safety
// `agent` is NULL or a live handle; `purpose` and `json` are NULL or NUL-terminated strings.
ledtrad_result ledtrad_set_consent(const ledtrad_agent *agent, const char *purpose, const char *json);

// Writes the agent's state as JSON into `buf` (the local API's `GET /v1/status`: connected,
// the catalogue version applied, counts). Buffer rules as for `ledtrad_offer`.
//
// # Safety
// `agent` is NULL or a live handle; `buf` is NULL or writable for `len` bytes; `needed` is
// NULL or writable.
ledtrad_result ledtrad_status(const ledtrad_agent *agent, char *buf, size_t len, size_t *needed);

// Registers `callback` for the agent's live events (NULL unregisters): `offer` (a moment the
// agent raised shows something: show it now; JSON as `ledtrad_offer` writes), `consent` (the
// consent view changed; JSON as `ledtrad_consent` writes), `catalogue` (a catalogue applied or
// refused: `{"version", "applied", "reason"?}`) and `missed` (events dropped: `{"missed",
// "why"}`). While no callback is registered, events wait for one (the last 64).
//
// The callback runs on a thread of the agent's, one event at a time. Its strings are valid
// only during the call: copy what you keep. It must not block for long (events queue behind
// it) and must not call `ledtrad_agent_stop`; other calls are fine. `user_data` is handed
// back as given and must be usable from that thread. Once this returns, the old callback is
// not running and is not called again (called from inside the callback: once it returns).
//
// # Safety
// `agent` is NULL or a live handle; `callback` is NULL or a function of this signature that
// may be called from another thread with `user_data` until it is replaced or the agent stops.
ledtrad_result ledtrad_set_event_callback(const ledtrad_agent *agent, ledtrad_event_callback callback, void *user_data);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* LEDTRAD_H */
