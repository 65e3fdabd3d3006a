// The reference device UI's one script. Every page talks to the agent's local API on the same
// origin: live events from GET /v1/events, answers with POST/PUT/DELETE and JSON bodies.
// Nothing is written into the page as HTML: every value from the agent goes in as text.
"use strict";

(function () {
  // The version of the consent text these pages show; sent with every consent change.
  const TEXT_VERSION = "2026-11";

  // The purposes in plain words: what each allows, and what the household gets for it.
  const PURPOSES = [
    {
      id: "personalise",
      name: "Personal offers",
      allows: "Use what this device senses (such as what runs low) to choose offers, here on the device.",
      gets: "Offers that fit your home, fewer that do not. Nothing leaves the device for this.",
    },
    {
      id: "request",
      name: "Ask for more offers",
      allows: "Send the kind of device, the moment and up to three broad interests to the offer service.",
      gets: "Offers beyond the ones already on the device. No readings and no name are sent.",
    },
    {
      id: "measure",
      name: "Measure offers",
      allows: "Send counts of offers shown and answered, blurred with noise and without any id.",
      gets: "Offers that are checked to be worth showing, and the draws some campaigns run.",
    },
    {
      id: "improve",
      name: "Improve suggestions",
      allows: "Send small, noised updates that help every home's suggestions get better.",
      gets: "Better suggestions over time, once model updates exist. Your readings stay on the device.",
    },
  ];
  // Children may never allow these.
  const ADULTS_ONLY = ["personalise", "request", "improve"];

  // --- talking to the agent ---------------------------------------------------------------

  // Calls the local API and returns its JSON answer (or null for 204). Errors carry the
  // agent's own message, which names the bad value and the fix.
  async function api(method, path, body) {
    const options = { method: method, headers: {} };
    if (body !== undefined) {
      options.headers["content-type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(path, options);
    const text = await response.text();
    let json = null;
    if (text) {
      try {
        json = JSON.parse(text);
      } catch (e) {
        json = null;
      }
    }
    if (!response.ok) {
      const said = json && json.error ? json.error : text || response.statusText;
      throw new Error(method + " " + path + " answered " + response.status + ": " + said);
    }
    return json;
  }

  // Listens to the agent's live events; `handlers` maps an event name to a function of its
  // data. EventSource reconnects by itself and sends Last-Event-ID.
  function listen(handlers) {
    const live = document.getElementById("live");
    const show = (state, text) => {
      if (live) {
        live.dataset.state = state;
        live.textContent = text;
      }
    };
    if (!("EventSource" in window)) {
      show("off", "No live updates in this browser");
      return;
    }
    const events = new EventSource("/v1/events");
    events.onopen = () => show("open", "Live");
    events.onerror = () => {
      if (events.readyState === EventSource.CLOSED) {
        show("off", "No live updates from this agent");
      } else {
        show("connecting", "Reconnecting…");
      }
    };
    Object.keys(handlers).forEach((name) => {
      events.addEventListener(name, (event) => {
        let data;
        try {
          data = JSON.parse(event.data);
        } catch (e) {
          return;
        }
        handlers[name](data);
      });
    });
  }

  // --- small DOM helpers ----------------------------------------------------------------

  // An element with attributes and children (strings become text).
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([key, value]) => {
      if (value === false || value === null || value === undefined) return;
      if (key.startsWith("data-") || key.startsWith("aria-") || key === "role" || key === "for") {
        node.setAttribute(key, String(value));
      } else {
        node[key] = value;
      }
    });
    children.flat().forEach((child) => {
      if (child === null || child === undefined) return;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function notice(text, kind) {
    const node = document.getElementById("notice");
    if (!node) return;
    node.textContent = text;
    node.dataset.kind = kind || "info";
  }

  function when(seconds) {
    if (typeof seconds !== "number") return String(seconds);
    return new Date(seconds * 1000).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
  }

  // --- device pages: the offer card -----------------------------------------------------

  // Whether an image reference may be loaded: only a path on this same origin.
  function sameOriginImage(reference) {
    if (typeof reference !== "string" || reference === "") return null;
    try {
      const url = new URL(reference, window.location.href);
      if (url.origin !== window.location.origin) return null;
      if (url.protocol !== window.location.protocol) return null;
      return url.href;
    } catch (e) {
      return null;
    }
  }

  function placeholder() {
    return el("div", { className: "placeholder", role: "img", "aria-label": "No picture" }, el("span", { "aria-hidden": "true" }, "◇"));
  }

  function showOffer(shown) {
    const card = document.getElementById("card");
    const prompt = document.getElementById("prompt");
    const offer = shown.offer;
    card.hidden = true;
    prompt.hidden = true;
    if (offer) {
      card.dataset.decision = String(shown.decision);
      card.dataset.offer = offer.offer;
      card.dataset.personalised = String(Boolean(offer.personalised));
      document.getElementById("card-title").textContent = offer.title;
      document.getElementById("card-question").textContent = offer.question;
      document.getElementById("card-body").textContent = offer.body;
      const mark = document.getElementById("card-mark");
      mark.replaceChildren(
        offer.personalised
          ? el("span", { className: "symbol", role: "img", "aria-label": "Personalised" }, "✦")
          : el("span", { className: "symbol plain", role: "img", "aria-label": "Not personalised" }, "○"),
        offer.personalised ? " Chosen with what this device knows" : " Not personalised: the same for every home"
      );
      mark.dataset.personalised = String(Boolean(offer.personalised));
      const why = document.getElementById("card-why");
      why.textContent = offer.why;
      why.hidden = true;
      document.getElementById("card-why-button").setAttribute("aria-expanded", "false");
      const image = document.getElementById("card-image");
      const source = sameOriginImage(offer.image);
      if (source) {
        const img = el("img", { src: source, alt: "" });
        img.addEventListener("error", () => image.replaceChildren(placeholder()));
        image.replaceChildren(img);
      } else {
        image.replaceChildren(placeholder());
      }
      card.querySelectorAll("button[data-feedback]").forEach((b) => (b.disabled = false));
      card.hidden = false;
    }
    if (shown.prompt) {
      prompt.dataset.decision = String(shown.decision);
      prompt.dataset.purpose = shown.prompt.purpose;
      document.getElementById("prompt-question").textContent = shown.prompt.question;
      document.getElementById("prompt-incentive").textContent = shown.prompt.incentive;
      prompt.querySelectorAll("button[data-answer]").forEach((b) => (b.disabled = false));
      prompt.hidden = false;
    }
    if (offer || shown.prompt) notice("");
  }

  const THANKS = {
    accepted: "Thank you. It is on its way.",
    dismissed: "All right, not now.",
    not_for_me: "Understood. Offers like this will not come back for a long while.",
  };

  async function answerOffer(kind) {
    const card = document.getElementById("card");
    const decision = Number(card.dataset.decision);
    card.querySelectorAll("button[data-feedback]").forEach((b) => (b.disabled = true));
    try {
      await api("POST", "/v1/feedback", { decision: decision, kind: kind });
      card.hidden = true;
      card.dataset.answered = kind;
      notice(THANKS[kind]);
    } catch (e) {
      card.querySelectorAll("button[data-feedback]").forEach((b) => (b.disabled = false));
      notice(e.message, "error");
    }
  }

  async function answerPrompt(answer) {
    const prompt = document.getElementById("prompt");
    prompt.querySelectorAll("button[data-answer]").forEach((b) => (b.disabled = true));
    try {
      await api("POST", "/v1/prompt-answer", { decision: Number(prompt.dataset.decision), answer: answer });
      prompt.hidden = true;
      notice(answer === "yes" ? "Thank you. You can change this any time under What this device may do." : "All right. We will not ask again soon.");
    } catch (e) {
      prompt.querySelectorAll("button[data-answer]").forEach((b) => (b.disabled = false));
      notice(e.message, "error");
    }
  }

  // Asks the agent for an offer at `moment` (what a device does when it has no live events).
  async function ask(moment) {
    try {
      const shown = await api("GET", "/v1/offer?moment=" + encodeURIComponent(moment));
      if (shown) showOffer(shown);
      else notice("Nothing to show right now.");
    } catch (e) {
      notice(e.message, "error");
    }
  }

  function tickClock() {
    const clock = document.getElementById("clock");
    const date = document.getElementById("date");
    const now = new Date();
    if (clock) clock.textContent = now.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    if (date) date.textContent = now.toLocaleDateString([], { weekday: "long", day: "numeric", month: "long" });
  }

  // The offer card and the consent prompt, the same on every device page: built here once,
  // in place of the page's `<div id="offers">`.
  function offerCards() {
    const card = el(
      "section",
      { id: "card", className: "card", hidden: true, "aria-live": "polite", "aria-labelledby": "card-title" },
      el("div", { className: "card-image", id: "card-image" }),
      el(
        "div",
        { className: "card-text" },
        el("p", { className: "card-mark", id: "card-mark" }),
        el("h2", { id: "card-title" }),
        el("p", { className: "card-question", id: "card-question" }),
        el("p", { className: "card-body", id: "card-body" }),
        el(
          "p",
          { className: "card-why-row" },
          el(
            "button",
            { type: "button", className: "info", id: "card-why-button", "aria-expanded": "false", "aria-controls": "card-why" },
            el("span", { "aria-hidden": "true" }, "i"),
            " Why am I seeing this?"
          )
        ),
        el("p", { className: "card-why", id: "card-why", hidden: true }),
        el(
          "div",
          { className: "actions", id: "card-actions" },
          el("button", { type: "button", className: "primary", "data-feedback": "accepted" }, "Yes, please"),
          el("button", { type: "button", "data-feedback": "dismissed" }, "Not now"),
          el("button", { type: "button", className: "quiet", "data-feedback": "not_for_me" }, "Not for me")
        )
      )
    );
    const prompt = el(
      "section",
      { id: "prompt", className: "card prompt", hidden: true, "aria-live": "polite", "aria-labelledby": "prompt-question" },
      el(
        "div",
        { className: "card-text" },
        el("h2", { id: "prompt-question" }),
        el("p", { className: "card-body", id: "prompt-incentive" }),
        el(
          "div",
          { className: "actions" },
          el("button", { type: "button", className: "primary", "data-answer": "yes" }, "Yes"),
          el("button", { type: "button", "data-answer": "no" }, "No, thanks")
        )
      )
    );
    return [card, prompt];
  }

  function startDevice() {
    const slot = document.getElementById("offers");
    if (slot) slot.replaceWith(...offerCards());
    tickClock();
    window.setInterval(tickClock, 15000);
    document.querySelectorAll("button[data-feedback]").forEach((b) =>
      b.addEventListener("click", () => answerOffer(b.dataset.feedback))
    );
    document.querySelectorAll("button[data-answer]").forEach((b) =>
      b.addEventListener("click", () => answerPrompt(b.dataset.answer))
    );
    const whyButton = document.getElementById("card-why-button");
    whyButton.addEventListener("click", () => {
      const why = document.getElementById("card-why");
      why.hidden = !why.hidden;
      whyButton.setAttribute("aria-expanded", String(!why.hidden));
    });
    const askButton = document.getElementById("ask");
    if (askButton) askButton.addEventListener("click", () => ask(askButton.dataset.moment));
    listen({
      offer: showOffer,
      catalogue: (c) =>
        c.applied
          ? notice("Offers updated (version " + c.version + ").")
          : notice("Kept the current offers: version " + c.version + " was refused (" + (c.reason || "no reason given") + ")."),
      missed: () => notice("Some updates were missed while the screen was away; new offers will appear as they come."),
    });
  }

  // --- the consent page ---------------------------------------------------------------

  let consentView = null;

  async function setConsent(person, purpose, granted) {
    const path =
      person === consentView.owner
        ? "/v1/consent/" + encodeURIComponent(purpose)
        : "/v1/people/" + encodeURIComponent(person) + "/consent/" + encodeURIComponent(purpose);
    try {
      renderConsent(await api("PUT", path, { granted: granted, text_version: TEXT_VERSION, source: "device_ui" }));
      const name = PURPOSES.find((p) => p.id === purpose).name;
      notice(name + (granted ? " is on" : " is off") + (person === consentView.owner ? "." : " for " + person + "."));
    } catch (e) {
      notice(e.message, "error");
      renderConsent(consentView);
    }
  }

  // Whether the agent says this version does not use the purpose (it can be granted all the same).
  function notUsed(purpose) {
    return Boolean(consentView && (consentView.not_used_by_this_version || []).includes(purpose));
  }

  function purposeRow(person, member, purpose) {
    const child = member.child && ADULTS_ONLY.includes(purpose.id);
    const id = "c-" + person + "-" + purpose.id;
    const toggle = el("input", {
      type: "checkbox",
      id: id,
      role: "switch",
      checked: Boolean(member[purpose.id]),
      disabled: child,
      "data-person": person,
      "data-purpose": purpose.id,
    });
    toggle.addEventListener("change", () => setConsent(person, purpose.id, toggle.checked));
    return el(
      "li",
      { className: "purpose" },
      el("div", { className: "purpose-text" },
        el("label", { for: id }, el("strong", {}, purpose.name)),
        el("p", {}, purpose.allows),
        el("p", { className: "gets" }, "You get: " + purpose.gets),
        notUsed(purpose.id)
          ? el("p", { className: "unused-note" }, "Not used by this version: nothing is sent or used for it yet.")
          : null,
        child ? el("p", { className: "child-note" }, "Children cannot allow this.") : null
      ),
      el("span", { className: "switch" }, toggle, el("span", { className: "switch-label", "aria-hidden": "true" }, member[purpose.id] ? "On" : "Off"))
    );
  }

  // The owner as a heading: by name, unless the device only knows them as "owner".
  function ownerName(person) {
    return person === "owner" ? "The device's owner" : person + " (the device's owner)";
  }

  function renderConsent(view) {
    consentView = view;
    const inForce = PURPOSES.filter((p) => view[p.id] && !notUsed(p.id)).map((p) => p.name.toLowerCase());
    const grantedUnused = PURPOSES.filter((p) => view[p.id] && notUsed(p.id)).map((p) => p.name.toLowerCase());
    document.getElementById("in-force").textContent =
      (view.sharing === "shared"
        ? "This device is shared: it does only what everyone it serves allows. "
        : "This is a personal device: your choices apply. ") +
      (inForce.length ? "In force now: " + inForce.join(", ") + "." : "Nothing personal is used now; offers are the same for every home.") +
      (grantedUnused.length ? " Allowed, but not used by this version: " + grantedUnused.join(", ") + "." : "");
    const people = Object.keys(view.people || {});
    const shown = view.sharing === "shared" && people.length ? people : [view.owner];
    const sections = shown.map((person) => {
      const member = (view.people || {})[person] || Object.assign({ child: false }, view);
      const title =
        view.sharing !== "shared" ? "Your choices" : person === view.owner ? ownerName(person) : person;
      return el(
        "section",
        { className: "person", "data-person": person },
        el("h2", {}, title, member.child ? el("span", { className: "badge" }, "child") : null),
        el("ul", { className: "purposes" }, PURPOSES.map((p) => purposeRow(person, member, p)))
      );
    });
    document.getElementById("people").replaceChildren(...sections);
  }

  async function startConsent() {
    try {
      renderConsent(await api("GET", "/v1/consent"));
    } catch (e) {
      notice(e.message, "error");
    }
    listen({ consent: renderConsent, missed: async () => renderConsent(await api("GET", "/v1/consent")) });
  }

  // --- the my-data page ---------------------------------------------------------------

  let myData = null;

  function table(caption, empty, headings, rows) {
    if (!rows.length) return el("section", { className: "data" }, el("h2", {}, caption), el("p", { className: "empty" }, empty));
    return el(
      "section",
      { className: "data" },
      el("h2", {}, caption),
      el("table", {},
        el("thead", {}, el("tr", {}, headings.map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c) => el("td", {}, String(c))))))
      )
    );
  }

  const FEEDBACK_WORDS = { accepted: "Yes, please", dismissed: "Not now", not_for_me: "Not for me" };

  function renderMyData(data) {
    myData = data;
    const held = [data.features, data.impressions, data.feedback, data.queued_reports, data.queued_messages];
    const empty = held.every((list) => !list || list.length === 0);
    const root = document.getElementById("data");
    root.dataset.empty = String(empty);
    root.replaceChildren(
      el("p", { className: "summary" },
        empty
          ? "This device holds nothing about you beyond the record of your choices."
          : "This device holds the following about " + (data.person === "owner" ? "you" : data.person) + "."),
      table("Measurements on this device", "None.", ["What", "Value"], (data.features || []).map((f) => [f.feature, Number(f.value).toFixed(2)])),
      table("Offers shown", "None.", ["When", "Offer", "Campaign"], (data.impressions || []).map((i) => [when(i.at), i.offer, i.campaign])),
      table("Your answers", "None.", ["When", "Offer", "Answer"], (data.feedback || []).map((f) => [when(f.at), f.offer, FEEDBACK_WORDS[f.kind] || f.kind])),
      table("Counts waiting to be sent", "None.", ["Campaign", "Shown", "Accepted", "Dismissed"], (data.queued_reports || []).map((q) => [q.campaign, q.impressions, q.accepts, q.dismissals])),
      table("Messages waiting to be sent", "None.", ["Why", "Queued"], (data.queued_messages || []).map((m) => [m.purpose, when(m.queued_at)])),
      table("Your choices about data", "None yet.", ["When", "What", "Choice", "Where"], (data.consent_ledger || []).map((r) => [when(r.at), r.purpose, r.granted ? "allowed" : "turned off", r.source])),
      table("Erasures", "None.", ["When", "Where"], (data.erasures || []).map((e) => [when(e.at), e.source]))
    );
  }

  function exportFile() {
    if (!myData) return;
    const blob = new Blob([JSON.stringify(myData, null, 2)], { type: "application/json" });
    const link = el("a", { href: URL.createObjectURL(blob), download: "my-data-" + myData.device + ".json" });
    document.body.append(link);
    link.click();
    link.remove();
    window.setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  }

  async function erase() {
    document.getElementById("confirm").hidden = true;
    try {
      renderMyData(await api("DELETE", "/v1/my-data?source=device_ui"));
      notice("Erased. This device holds nothing about you beyond the record of your choices.");
    } catch (e) {
      notice(e.message, "error");
    }
  }

  async function startMyData() {
    const confirm = document.getElementById("confirm");
    document.getElementById("export").addEventListener("click", exportFile);
    document.getElementById("erase").addEventListener("click", () => {
      confirm.hidden = false;
      document.getElementById("erase-cancel").focus();
    });
    document.getElementById("erase-cancel").addEventListener("click", () => (confirm.hidden = true));
    document.getElementById("erase-confirm").addEventListener("click", erase);
    try {
      renderMyData(await api("GET", "/v1/my-data"));
    } catch (e) {
      notice(e.message, "error");
    }
  }

  const START = { device: startDevice, consent: startConsent, "my-data": startMyData };
  const page = document.body.dataset.page;
  if (START[page]) START[page]();
  // For a device maker's own code: ask for an offer at a moment, or show one from elsewhere.
  window.ledtrad = { api: api, ask: ask, showOffer: showOffer };
})();
