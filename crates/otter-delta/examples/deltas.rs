//! Patch sizes and costs for `bench/deltas.sh` (a measurement, not a test).
//!
//! ```text
//! deltas sizes BASE TARGET          one line per format: patch bytes, share of the target, time
//! deltas one FORMAT BASE TARGET [OUT]  makes one patch (under /usr/bin/time -v for its memory)
//! deltas wrap FILE ESP_IMAGE        FILE as the payload of an ESP app image (as is if it is one)
//! ```
//!
//! Files that are not ESP app images are first wrapped into one (as the payload of a flash-data
//! segment, `otter_testkit::images::esp32_app`), so that every format, esp-delta-ota included,
//! sees the same bytes. Every patch is applied again and compared with the target before its
//! size is printed.

use std::process::ExitCode;
use std::time::Instant;

use otter_delta::{Format, apply, create, esp_validation_hash};
use otter_testkit::images::esp32_app;

/// The two files, wrapped into ESP app images unless both already are.
fn images(base: &str, target: &str) -> Result<(Vec<u8>, Vec<u8>, bool), String> {
    let read = |p: &str| std::fs::read(p).map_err(|e| format!("{p}: {e}"));
    let (base, target) = (read(base)?, read(target)?);
    if esp_validation_hash(&base).is_ok() && esp_validation_hash(&target).is_ok() {
        return Ok((base, target, false));
    }
    Ok((esp32_app(&base), esp32_app(&target), true))
}

fn run(args: &[String]) -> Result<(), String> {
    match args {
        [cmd, base, target] if cmd == "sizes" => {
            let (base, target, wrapped) = images(base, target)?;
            println!(
                "target {} bytes{}",
                target.len(),
                if wrapped {
                    " (wrapped as an ESP app image)"
                } else {
                    ""
                }
            );
            for format in Format::ALL {
                let start = Instant::now();
                let patch = create(format, &base, &target).map_err(|e| format!("{format}: {e}"))?;
                let seconds = start.elapsed().as_secs_f64();
                let applied = apply(format, &base, &patch, target.len() as u64)
                    .map_err(|e| format!("{format}: applying: {e}"))?;
                if applied != target {
                    return Err(format!("{format}: the patch does not reproduce the target"));
                }
                println!(
                    "{format:<14} {:>10} bytes {:>7.2} % {:>8.2} s",
                    patch.len(),
                    100.0 * patch.len() as f64 / target.len() as f64,
                    seconds
                );
            }
            Ok(())
        }
        [cmd, format, base, target, out @ ..] if cmd == "one" && out.len() <= 1 => {
            let format: Format = format.parse().map_err(|e| format!("{e}"))?;
            let (base, target, _) = images(base, target)?;
            let start = Instant::now();
            let patch = create(format, &base, &target).map_err(|e| format!("{format}: {e}"))?;
            println!(
                "{format}: {} bytes ({:.2} %) in {:.2} s",
                patch.len(),
                100.0 * patch.len() as f64 / target.len() as f64,
                start.elapsed().as_secs_f64()
            );
            match out {
                [out] => std::fs::write(out, &patch).map_err(|e| format!("{out}: {e}")),
                _ => Ok(()),
            }
        }
        [cmd, file, out] if cmd == "wrap" => {
            let bytes = std::fs::read(file).map_err(|e| format!("{file}: {e}"))?;
            let image = match esp_validation_hash(&bytes) {
                Ok(_) => bytes,
                Err(_) => esp32_app(&bytes),
            };
            std::fs::write(out, image).map_err(|e| format!("{out}: {e}"))
        }
        _ => Err(
            "usage: deltas sizes BASE TARGET | one FORMAT BASE TARGET [OUT] | wrap FILE ESP_IMAGE"
                .into(),
        ),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("deltas: {e}");
            ExitCode::FAILURE
        }
    }
}
