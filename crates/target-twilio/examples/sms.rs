//! Prints the SMS the Twilio target would send for the built-in samples, with the segments
//! each takes: `cargo run -p sqreen-webhook-target-twilio --example sms [sample] [max_segments]`.
//! The README's examples come from here.

use sqreen_webhook_core::parse;
use sqreen_webhook_core::samples::SAMPLES;
use sqreen_webhook_target_twilio::config::DEFAULT_MAX_SEGMENTS;
use sqreen_webhook_target_twilio::render::sms;
use sqreen_webhook_target_twilio::segments::{Encoding, count};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let only = args.next();
    let max_segments = match args.next() {
        Some(text) => text.parse()?,
        None => DEFAULT_MAX_SEGMENTS,
    };
    for sample in SAMPLES {
        if only.as_deref().is_some_and(|name| name != sample.name) {
            continue;
        }
        for notification in parse(sample.body.as_bytes())? {
            let text = sms(notification.view(), max_segments);
            println!(
                "== {}: {:?}, segments: {}\n{text}\n",
                sample.name,
                Encoding::of(&text),
                count(&text)
            );
        }
    }
    Ok(())
}
