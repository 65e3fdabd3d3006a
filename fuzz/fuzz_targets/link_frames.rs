//! The sensor board's serial link: any byte stream through the frame decoder the agent reads
//! the board with, and any bytes as one frame. A frame of either kind (summary or event) that
//! decodes encodes back to itself.
#![no_main]

use ledtrad_protocol::link::{decode, encode, FrameDecoder, MAX_FRAME};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode(data);
    let mut decoder = FrameDecoder::new();
    for &byte in data {
        if let Some(Ok(frame)) = decoder.push(byte) {
            let mut out = [0u8; MAX_FRAME + 2];
            let bytes = encode(frame, &mut out).expect("a decoded frame encodes");
            let mut again = FrameDecoder::new();
            let decoded: Vec<_> = bytes.iter().filter_map(|&b| again.push(b)).collect();
            assert_eq!(decoded.len(), 1, "one frame back");
            assert_eq!(decoded[0].as_ref().ok(), Some(&frame), "a frame survives the round trip");
        }
    }
    let _ = decoder.take_incomplete();
});
