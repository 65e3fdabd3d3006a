//! The reference device UI in headless Chromium against a real agent (real broker, SQLite and
//! signed catalogue): an offer card comes up on the fridge page, is accepted with a click, the
//! consent page turns personalisation off, and the my-data page erases what the device holds.
//!
//! Set `LEDTRAD_UI_SCREENSHOTS=<dir>` to save a PNG of each page there (docs/ui/ holds them).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use headless_chrome::protocol::cdp::Emulation;
use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::{Browser, LaunchOptions, Tab};
use ledtrad_protocol::{DeviceKind, FleetId, Purpose};
use ledtrad_tests::require::REQUIRE_CHROMIUM;
use ledtrad_tests::*;
use serde_json::{json, Value};

/// The variable naming a directory to save each page's screenshot in.
const SCREENSHOTS: &str = "LEDTRAD_UI_SCREENSHOTS";

/// The panel size the pages are made for.
const PANEL: (u32, u32) = (800, 480);

/// How long the page may take to show what the test waits for.
const WITHIN: Duration = Duration::from_secs(15);

/// The Chromium program on `PATH`: `chromium`, else `chromium-browser`.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// A browser tab on the agent's pages. Chromium is driven over a blocking connection, so
/// each call steps off the async runtime's worker while it waits.
struct Screen {
    _browser: Browser,
    tab: Arc<Tab>,
    base: String,
    shots: Option<PathBuf>,
}

impl Screen {
    fn open(program: PathBuf, base: String) -> Self {
        let options = LaunchOptions::default_builder()
            .path(Some(program))
            .headless(true)
            .sandbox(false)
            .window_size(Some(PANEL))
            .idle_browser_timeout(Duration::from_secs(120))
            .build()
            .expect("Chromium's launch options");
        let browser = blocking(|| Browser::new(options)).expect("Chromium starts");
        let tab = blocking(|| browser.new_tab()).expect("a tab");
        tab.set_default_timeout(WITHIN);
        // The window's size is not the page's in every Chromium: set the viewport itself.
        let (width, height) = PANEL;
        let metrics: Emulation::SetDeviceMetricsOverride =
            serde_json::from_value(json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}))
                .expect("device metrics");
        blocking(|| tab.call_method(metrics).map(|_| ())).expect("an 800×480 viewport");
        let shots = std::env::var_os(SCREENSHOTS).map(PathBuf::from);
        Self { _browser: browser, tab, base, shots }
    }

    fn go(&self, page: &str) {
        let url = format!("{}{page}", self.base);
        blocking(|| self.tab.navigate_to(&url)?.wait_until_navigated().map(|_| ()))
            .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    /// Waits until `selector` matches an element, and returns nothing: what to read or click
    /// is then asked for by selector again.
    fn wait_for(&self, selector: &str) {
        blocking(|| self.tab.wait_for_element(selector).map(|_| ()))
            .unwrap_or_else(|e| panic!("waiting for '{selector}' on {}: {e}", self.tab.get_url()));
    }

    fn click(&self, selector: &str) {
        blocking(|| self.tab.wait_for_element(selector)?.click().map(|_| ()))
            .unwrap_or_else(|e| panic!("clicking '{selector}' on {}: {e}", self.tab.get_url()));
    }

    /// The value of a JavaScript expression on the page.
    fn eval(&self, expression: &str) -> Value {
        blocking(|| self.tab.evaluate(expression, false))
            .unwrap_or_else(|e| panic!("evaluating {expression}: {e}"))
            .value
            .unwrap_or(Value::Null)
    }

    fn text(&self, selector: &str) -> String {
        let quoted = serde_json::to_string(selector).expect("a selector as a string");
        match self.eval(&format!("document.querySelector({quoted})?.textContent ?? null")) {
            Value::String(text) => text,
            other => panic!("no element '{selector}' on {} (got {other})", self.tab.get_url()),
        }
    }

    /// Saves a screenshot as `<name>.png` where `LEDTRAD_UI_SCREENSHOTS` says.
    fn screenshot(&self, name: &str) {
        let Some(dir) = &self.shots else { return };
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{SCREENSHOTS}={}: {e}", dir.display()));
        let png = blocking(|| self.tab.capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true))
            .expect("a screenshot");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
}

fn blocking<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    tokio::task::block_in_place(f)
}

async fn post(http: &reqwest::Client, agent: &TestAgent, path: &str, body: Value) -> Value {
    let response = http.post(format!("{}{path}", agent.api())).json(&body).send().await.expect("request");
    assert!(response.status().is_success(), "POST {path}: {}", response.status());
    response.json().await.unwrap_or(Value::Null)
}

async fn get(http: &reqwest::Client, agent: &TestAgent, path: &str) -> Value {
    let response = http.get(format!("{}{path}", agent.api())).send().await.expect("request");
    assert!(response.status().is_success(), "GET {path}: {}", response.status());
    response.json().await.expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_household_answers_an_offer_turns_personalisation_off_and_erases_its_data_on_the_fridge_screen() {
    let program = chromium();
    if !present_or_skip(
        program.is_some(),
        "chromium is not installed (neither 'chromium' nor 'chromium-browser' is on PATH)",
        REQUIRE_CHROMIUM,
        "scripts/chromium installs it",
    ) {
        return;
    }
    init_logs();
    let (key, fleet, http) = (operator_key(1), FleetId::try_new(unique("fleet")).unwrap(), reqwest::Client::new());
    let agent = TestAgent::start_with(DeviceKind::Fridge, &fleet, &key, &broker(), |raw| {
        raw.ui = true;
        raw.raise_moments = Some(true);
    })
    .await;
    push(&key, &fleet, 1).await;
    agent.wait_for("version 1", |s| s.catalogue_version == Some(1)).await;
    grant(&agent, Purpose::Personalise).await;
    let screen = Screen::open(program.expect("checked above"), agent.api());

    // The index links every page.
    screen.go("/ui/");
    for page in ["/ui/fridge", "/ui/lock-screen", "/ui/ereader", "/ui/consent", "/ui/my-data"] {
        let link = screen.eval(&format!("document.querySelector('a[href=\"{page}\"]') !== null"));
        assert_eq!(link, json!(true), "the index links {page}");
    }

    // Butter runs low: the agent raises the moment itself and the card comes up with no click,
    // marked as chosen with what the device knows.
    screen.go("/ui/fridge");
    screen.wait_for("#live[data-state='open']");
    let outcome = post(&http, &agent, "/v1/signals", json!({"feature": "fridge.butter.level", "value": 0.1})).await;
    assert_eq!(outcome["raised"], json!("inventory_low"), "{outcome}");
    screen.wait_for("#card:not([hidden])[data-personalised='true']");
    assert_eq!(screen.text("#card-title"), "Butter, delivered");
    assert!(screen.text("#card-question").ends_with('?'));
    assert!(screen.text("#card-mark").contains("Chosen with what this device knows"));
    let symbol = screen.eval("document.querySelector('#card-mark .symbol').getAttribute('aria-label')");
    assert_eq!(symbol, json!("Personalised"));
    // Its image reference is not a path the agent serves: a neutral placeholder shows.
    screen.wait_for("#card-image .placeholder, #card-image img");
    // The why is behind the info button.
    assert_eq!(screen.eval("document.querySelector('#card-why').hidden"), json!(true));
    screen.click("#card-why-button");
    assert_eq!(screen.text("#card-why"), "Because dairy runs low often in this home.");
    screen.screenshot("fridge");
    let decision: u64 =
        screen.eval("document.querySelector('#card').dataset.decision").as_str().unwrap().parse().unwrap();

    // Accept with a click: the agent has the feedback for the decision the event carried.
    screen.click("#card button[data-feedback='accepted']");
    screen.wait_for("#card[hidden][data-answered='accepted']");
    let trace = get(&http, &agent, &format!("/v1/decisions/{decision}")).await;
    assert_eq!((&trace["moment"], &trace["shown"]["offer"]), (&json!("inventory_low"), &json!("butter-refill")));
    assert_eq!(trace["answers"][0]["kind"], json!("accepted"), "the feedback is in the decision's trace: {trace}");
    let data = get(&http, &agent, "/v1/my-data").await;
    let feedback = data["feedback"].as_array().expect("feedback");
    assert!(
        feedback.iter().any(|f| f["decision"] == json!(decision) && f["kind"] == "accepted"),
        "decision {decision} has its feedback: {feedback:?}"
    );

    // The other device screens.
    for (page, name) in [("/ui/lock-screen", "lock-screen"), ("/ui/ereader", "ereader")] {
        screen.go(page);
        screen.wait_for("#clock, h1");
        screen.screenshot(name);
    }

    // Personalisation off with a click on the consent page.
    screen.go("/ui/consent");
    let toggle = "input[data-purpose='personalise'][data-person='owner']";
    screen.wait_for(&format!("{toggle}:checked"));
    screen.screenshot("consent");
    screen.click(toggle);
    screen.wait_for(&format!("{toggle}:not(:checked)"));
    let consent = get(&http, &agent, "/v1/consent").await;
    assert_eq!(consent["personalise"], false, "{consent}");

    // The next door opening asks first (the catalogue's consent prompt): "no, thanks". At the
    // one after, the card is not personalised, and says so.
    screen.go("/ui/fridge");
    screen.wait_for("#live[data-state='open']");
    let door = json!({"feature": "fridge.door.opens", "value": 1});
    assert_eq!(post(&http, &agent, "/v1/signals", door.clone()).await["raised"], json!("door_opened"));
    screen.wait_for("#prompt:not([hidden])[data-purpose='personalise']");
    assert!(screen.text("#prompt-question").ends_with('?'));
    screen.screenshot("fridge-prompt");
    screen.click("#prompt button[data-answer='no']");
    screen.wait_for("#prompt[hidden]");
    assert_eq!(post(&http, &agent, "/v1/signals", door).await["raised"], json!("door_opened"));
    screen.wait_for("#card:not([hidden])[data-personalised='false']");
    assert!(screen.text("#card-mark").contains("Not personalised"));
    screen.click("#card button[data-feedback='dismissed']");
    screen.wait_for("#card[hidden][data-answered='dismissed']");

    // My data, then erased after the confirmation step.
    screen.go("/ui/my-data");
    screen.wait_for("#data[data-empty='false']");
    screen.screenshot("my-data");
    screen.click("#erase");
    screen.wait_for("#confirm:not([hidden])");
    assert_eq!(get(&http, &agent, "/v1/my-data").await["feedback"].as_array().map(Vec::len), Some(2));
    screen.click("#erase-confirm");
    screen.wait_for("#data[data-empty='true']");
    let data = get(&http, &agent, "/v1/my-data").await;
    for held in ["features", "impressions", "feedback", "queued_reports", "queued_messages"] {
        assert_eq!(data[held], json!([]), "{held} after the erasure: {data}");
    }
    assert_eq!(data["erasures"].as_array().map(Vec::len), Some(1));

    agent.stop().await;
    clear_catalogue(&fleet).await;
}
