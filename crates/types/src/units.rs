//! Human-readable sizes and durations, as AIStore's tools print them (shared by the CLI and the
//! job control messages nodes write).

/// Size in IEC units with two decimals, as AIStore prints them: `512B`, `1.50KiB`, `2.00GiB`.
pub fn iec(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.2}{}", UNITS[unit])
}

/// A duration given in nanoseconds, short: `0s`, `850ns`, `12.5µs`, `2.3ms`, `1.25s`, `2m5s`.
pub fn duration_ns(ns: u64) -> String {
    const MICRO: u64 = 1_000;
    const MILLI: u64 = 1_000_000;
    const SECOND: u64 = 1_000_000_000;
    let scaled = |unit: u64, suffix: &str| {
        let text = format!("{:.2}", ns as f64 / unit as f64);
        let trimmed = text.trim_end_matches('0').trim_end_matches('.');
        format!("{trimmed}{suffix}")
    };
    match ns {
        0 => "0s".to_string(),
        n if n < MICRO => format!("{n}ns"),
        n if n < MILLI => scaled(MICRO, "µs"),
        n if n < SECOND => scaled(MILLI, "ms"),
        n if n < 60 * SECOND => scaled(SECOND, "s"),
        n => {
            let secs = (n + SECOND / 2) / SECOND;
            let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
            if h > 0 {
                format!("{h}h{m}m{s}s")
            } else {
                format!("{m}m{s}s")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iec_sizes() {
        assert_eq!(iec(0), "0B");
        assert_eq!(iec(1023), "1023B");
        assert_eq!(iec(1024), "1.00KiB");
        assert_eq!(iec(1536), "1.50KiB");
        assert_eq!(iec(10 * 1024 * 1024), "10.00MiB");
        assert_eq!(iec(2 << 30), "2.00GiB");
        assert_eq!(iec(u64::MAX), "16.00EiB");
    }

    #[test]
    fn durations() {
        assert_eq!(duration_ns(0), "0s");
        assert_eq!(duration_ns(850), "850ns");
        assert_eq!(duration_ns(1_000), "1µs");
        assert_eq!(duration_ns(12_500), "12.5µs");
        assert_eq!(duration_ns(2_300_000), "2.3ms");
        assert_eq!(duration_ns(1_250_000_000), "1.25s");
        assert_eq!(duration_ns(125_000_000_000), "2m5s");
        assert_eq!(duration_ns(3_725_000_000_000), "1h2m5s");
    }
}
