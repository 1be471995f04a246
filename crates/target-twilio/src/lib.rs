//! The Twilio target of the Sqreen webhook relay: each notification becomes an SMS, sent
//! through Twilio's Messages API to one or several phone numbers.
//!
//! - [`config`]: the keys of a `type = "twilio"` target and their validation.
//! - [`target`]: [`TwilioTarget`], the calls to Twilio and how their failures are
//!   classified, including what a retry means when only some recipients got the SMS.
//! - [`render`]: the SMS text, short enough for one segment when the alert allows.
//! - [`segments`]: GSM-7 and UCS-2 segment counting, and cutting a text to fit.

pub mod config;
pub mod render;
pub mod segments;
pub mod target;

pub use config::{BuildError, Config, PhoneNumber};
pub use target::TwilioTarget;
