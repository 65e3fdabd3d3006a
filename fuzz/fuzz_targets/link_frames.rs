//! The sensor board's serial link: any byte stream through the frame decoder the agent reads
//! the board with, and any bytes as one frame. A frame that decodes encodes back to itself.
#![no_main]

use ledtrad_protocol::link::{decode, encode, FrameDecoder, MAX_FRAME};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode(data);
    let mut decoder = FrameDecoder::new();
    for &byte in data {
        if let Some(Ok(summary)) = decoder.push(byte) {
            let mut out = [0u8; MAX_FRAME + 2];
            let frame = encode(&summary, &mut out).expect("a decoded summary encodes");
            let mut again = FrameDecoder::new();
            let decoded: Vec<_> = frame.iter().filter_map(|&b| again.push(b)).collect();
            assert_eq!(decoded.len(), 1, "one frame back");
            assert_eq!(decoded[0].as_ref().ok(), Some(&summary), "a summary survives the round trip");
        }
    }
    let _ = decoder.take_incomplete();
});
