//! What a process costs, read from Linux's `/proc`: resident memory now and at its peak,
//! and processor time used.
//!
//! `VmHWM` is the kernel's own high-water mark of resident memory, so a peak between two
//! readings is not missed. Processor time lets a figure be given per request, which holds
//! better than requests per second when the load generator shares the cores.

use std::time::Duration;

use serde::Serialize;

/// Resident memory of a process, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the most it has been resident since it started.
    pub peak_kib: u64,
}

/// Reads `/proc/PID/status`; `None` when the process is gone or this is not Linux.
pub fn memory(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status(&status)
}

fn parse_status(status: &str) -> Option<Memory> {
    let field = |name: &str| {
        status.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
    };
    Some(Memory {
        rss_kib: field("VmRSS")?,
        peak_kib: field("VmHWM")?,
    })
}

/// User and system processor time of a process so far (`/proc/PID/stat`); `pid` 0 means
/// this process.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let path = if pid == 0 {
        "/proc/self/stat".to_owned()
    } else {
        format!("/proc/{pid}/stat")
    };
    parse_stat(&std::fs::read_to_string(path).ok()?)
}

/// Clock ticks of `/proc/PID/stat`: `USER_HZ`, 100 on every Linux architecture in use.
const TICKS_PER_SECOND: u64 = 100;

fn parse_stat(stat: &str) -> Option<Duration> {
    // The command name, field 2, is in parentheses and may hold spaces: count from after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis(
        (utime + stime) * 1000 / TICKS_PER_SECOND,
    ))
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_resident_memory_and_its_peak_from_the_status_file() {
        let status =
            "Name:\tserver\nVmPeak:\t  900000 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";

        assert_eq!(
            parse_status(status),
            Some(Memory {
                rss_kib: 10240,
                peak_kib: 20480
            })
        );
    }

    #[test]
    fn reads_processor_time_after_a_command_name_with_spaces() {
        let stat = "42 (my server) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0";

        assert_eq!(parse_stat(stat), Some(Duration::from_secs(3)));
    }

    #[test]
    fn this_process_can_be_measured() {
        let me = memory(std::process::id()).unwrap();

        assert!(me.rss_kib > 0 && me.peak_kib >= me.rss_kib);
        assert!(cpu_time(0).is_some());
    }
}
