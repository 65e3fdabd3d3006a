/*
 * fridge_panel: a fridge's display embedding the ledtrad agent through its C API.
 *
 * It starts an agent from the config given as its argument, follows the agent's live events,
 * grants the `personalise` consent as the household's "yes" on the screen would, waits for the
 * fleet's catalogue, reports the butter shelf nearly empty (the agent raises `inventory_low`
 * itself), shows the offer that comes, answers it "accepted", and stops the agent.
 *
 *   fridge_panel AGENT.toml        (examples/c/run.sh sets everything up and runs it)
 *
 * Exits 0 when all went through, 1 with the agent's last error otherwise.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ledtrad.h"

/* How long to wait for each event before giving up. */
#define WAIT_SECONDS 20

/* What the event callback saw, guarded by `lock`; `changed` is signalled on each event. */
struct panel {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int catalogue_applied;
    char *catalogue_refused; /* the refusal's JSON, when the catalogue was refused */
    char *offer;             /* the first offer event's JSON */
};

/* Called on a thread of the agent's: copy what is kept (the strings live during the call only),
 * wake the main thread, return quickly. */
static void on_event(const char *event_name, const char *json, void *user_data) {
    struct panel *panel = user_data;
    printf("event %-9s %s\n", event_name, json);
    fflush(stdout);
    pthread_mutex_lock(&panel->lock);
    if (strcmp(event_name, "catalogue") == 0) {
        if (strstr(json, "\"applied\":true") != NULL) {
            panel->catalogue_applied = 1;
        } else if (panel->catalogue_refused == NULL) {
            panel->catalogue_refused = strdup(json);
        }
    } else if (strcmp(event_name, "offer") == 0 && panel->offer == NULL) {
        panel->offer = strdup(json);
    }
    pthread_cond_broadcast(&panel->changed);
    pthread_mutex_unlock(&panel->lock);
}

static int catalogue_settled(const struct panel *panel) {
    return panel->catalogue_applied || panel->catalogue_refused != NULL;
}

static int offer_arrived(const struct panel *panel) {
    return panel->offer != NULL;
}

/* Waits until `done(panel)` holds, at most WAIT_SECONDS; returns whether it holds. */
static int wait_for(struct panel *panel, int (*done)(const struct panel *)) {
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += WAIT_SECONDS;
    pthread_mutex_lock(&panel->lock);
    int rc = 0;
    while (!done(panel) && rc != ETIMEDOUT) {
        rc = pthread_cond_timedwait(&panel->changed, &panel->lock, &deadline);
    }
    int held = done(panel);
    pthread_mutex_unlock(&panel->lock);
    return held;
}

/* The string value of `"key":"..."` in `json`, copied into `out` (escapes kept as they are):
 * enough for this example; a real panel would use its JSON library. */
static const char *json_string(const char *json, const char *key, char *out, size_t len) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\":\"", key);
    const char *at = strstr(json, pattern);
    size_t n = 0;
    if (at != NULL) {
        for (at += strlen(pattern); *at != '\0' && *at != '"' && n + 1 < len; at++) {
            if (*at == '\\' && at[1] != '\0' && n + 2 < len) {
                out[n++] = *at++;
            }
            out[n++] = *at;
        }
    }
    out[n] = '\0';
    return out;
}

static ledtrad_agent *agent = NULL;

/* Says what failed with the agent's own message, stops the agent and exits 1. */
static void fail(const char *what) {
    fprintf(stderr, "fridge_panel: %s: %s\n", what, ledtrad_last_error());
    ledtrad_agent_stop(agent);
    exit(1);
}

static void check(ledtrad_result result, const char *what) {
    if (result != LEDTRAD_RESULT_OK) {
        fail(what);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s AGENT.toml\n", argv[0]);
        return 2;
    }
    printf("ledtrad %s\n", ledtrad_version());

    struct panel panel = {0};
    pthread_condattr_t monotonic;
    pthread_condattr_init(&monotonic);
    pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
    pthread_mutex_init(&panel.lock, NULL);
    pthread_cond_init(&panel.changed, &monotonic);
    pthread_condattr_destroy(&monotonic);

    check(ledtrad_agent_start(argv[1], &agent), "starting the agent");
    check(ledtrad_set_event_callback(agent, on_event, &panel), "registering the event callback");
    check(ledtrad_set_consent(agent, "personalise",
                              "{\"granted\": true, \"text_version\": \"2026-11\", \"source\": \"device_ui\"}"),
          "granting personalise");

    if (!wait_for(&panel, catalogue_settled)) {
        fprintf(stderr, "fridge_panel: no catalogue within %d s: was it pushed to this fleet?\n", WAIT_SECONDS);
        ledtrad_agent_stop(agent);
        return 1;
    }
    if (panel.catalogue_refused != NULL) {
        fprintf(stderr, "fridge_panel: the catalogue was refused: %s\n", panel.catalogue_refused);
        ledtrad_agent_stop(agent);
        return 1;
    }

    /* The consent in force, read into a buffer of our own; a small one says the size it needs. */
    char small[16];
    size_t needed = 0;
    ledtrad_result result = ledtrad_consent(agent, small, sizeof small, &needed);
    if (result != LEDTRAD_RESULT_BUFFER_TOO_SMALL) {
        fail("reading the consent into a small buffer");
    }
    char *consent = malloc(needed);
    if (consent == NULL) {
        fail("allocating the consent's buffer");
    }
    check(ledtrad_consent(agent, consent, needed, &needed), "reading the consent");
    printf("consent   %s\n", consent);
    free(consent);

    check(ledtrad_signals(agent, "{\"signals\": [{\"feature\": \"fridge.butter.level\", \"value\": 0.08}]}"),
          "reporting the butter level");
    if (!wait_for(&panel, offer_arrived)) {
        fprintf(stderr, "fridge_panel: no offer within %d s after the butter ran low\n", WAIT_SECONDS);
        ledtrad_agent_stop(agent);
        return 1;
    }

    char question[512], why[256];
    printf("\n  %s\n  (%s)\n\n", json_string(panel.offer, "question", question, sizeof question),
           json_string(panel.offer, "why", why, sizeof why));
    const char *decision_at = strstr(panel.offer, "\"decision\":");
    if (decision_at == NULL) {
        fprintf(stderr, "fridge_panel: the offer event has no decision: %s\n", panel.offer);
        ledtrad_agent_stop(agent);
        return 1;
    }
    uint64_t decision = strtoull(decision_at + strlen("\"decision\":"), NULL, 10);
    char feedback[96];
    snprintf(feedback, sizeof feedback, "{\"decision\": %" PRIu64 ", \"kind\": \"accepted\"}", decision);
    check(ledtrad_feedback(agent, feedback), "sending the feedback");
    printf("feedback  accepted (decision %" PRIu64 ")\n", decision);

    check(ledtrad_set_event_callback(agent, NULL, NULL), "unregistering the event callback");
    check(ledtrad_agent_stop(agent), "stopping the agent");
    agent = NULL;

    free(panel.offer);
    free(panel.catalogue_refused);
    pthread_cond_destroy(&panel.changed);
    pthread_mutex_destroy(&panel.lock);
    printf("stopped cleanly\n");
    return 0;
}
