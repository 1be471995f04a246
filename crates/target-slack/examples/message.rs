//! Prints the Slack message the target would post for the built-in samples, as the JSON
//! Slack receives: `cargo run -p sqreen-webhook-target-slack --example message [sample]`.
//! The README's example comes from here.

use sqreen_webhook_core::parse;
use sqreen_webhook_core::samples::SAMPLES;
use sqreen_webhook_target_slack::render;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let only = std::env::args().nth(1);
    for sample in SAMPLES {
        if only.as_deref().is_some_and(|name| name != sample.name) {
            continue;
        }
        for notification in parse(sample.body.as_bytes())? {
            let message = render::message(notification.view());
            println!(
                "== {}\n{}\n",
                sample.name,
                serde_json::to_string_pretty(&message)?
            );
        }
    }
    Ok(())
}
