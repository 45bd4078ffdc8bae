//! Parses any payload as any data frame kind. It must never panic, and whatever it
//! accepts must serialize and parse back to the same message.

#![no_main]

use libfuzzer_sys::fuzz_target;
use posbridge::message::Message;
use posbridge::wire::Kind;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, payload)) = data.split_first() else {
        return;
    };
    if let Ok(message) = Message::parse(Kind(kind), payload) {
        let again = Message::parse(message.kind(), &message.to_frame_payload())
            .expect("an accepted message re-parses");
        assert_eq!(again, message);
    }
});
