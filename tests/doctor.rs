//! `kidbench doctor` reports the libtorch the binary runs on.

use crate::util::run;

#[test]
fn doctor_reports_libtorch_2_11_and_cuda_state() {
    let (ok, stdout, stderr) = run(&["doctor"]);
    assert!(ok, "{stdout}\n{stderr}");
    let build = stdout
        .lines()
        .find(|l| l.starts_with("libtorch (build): "))
        .unwrap_or_else(|| panic!("no build line in {stdout}"));
    assert!(
        build.contains("2.11.0"),
        "tch 0.24.0 needs libtorch 2.11.0: {build}"
    );
    let loaded = stdout
        .lines()
        .find(|l| l.starts_with("libtorch (loaded): "))
        .unwrap();
    assert!(loaded.contains("libtorch_cpu.so"), "{loaded}");
    assert!(stdout.contains("CUDA available: "), "{stdout}");
    assert!(stdout.contains("data directory: "), "{stdout}");
    let cpu = stdout
        .lines()
        .find(|l| l.starts_with("CPU: "))
        .unwrap_or_else(|| panic!("no CPU line in {stdout}"));
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    if let Some(name) = info.lines().find(|l| l.starts_with("model name")) {
        let name = name.split_once(':').unwrap().1.trim();
        assert!(cpu.contains(name), "{cpu} does not name {name}");
    }
}
