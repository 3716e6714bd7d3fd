//! The binary payloads of the fixtures, base64-encoded as MCP carries them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// A 1x1 red PNG image.
const RED_PIXEL_PNG: &[u8] = include_bytes!("../media/red-pixel.png");

/// One millisecond of silence: 8 samples of 8-bit mono PCM at 8 kHz, in a WAV container.
const SILENCE_WAV: &[u8] = include_bytes!("../media/silence.wav");

/// The red pixel, base64-encoded.
pub(crate) fn red_pixel_png() -> String {
    STANDARD.encode(RED_PIXEL_PNG)
}

/// The silence, base64-encoded.
pub(crate) fn silence_wav() -> String {
    STANDARD.encode(SILENCE_WAV)
}
