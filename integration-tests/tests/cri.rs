//! Kubernetes' view of the runtime: hull as a RuntimeClass handler under containerd's CRI plugin,
//! driven by the calls kubelet makes (see `integration_tests::cri`). Every scenario runs with
//! handler `hull` and with handler `runc`, the reference: a scenario that fails with runc is a
//! bug of the test.

use integration_tests::cri::{api, available, Cri, HANDLERS};

#[test]
fn version_and_a_pod_with_a_container() {
    if !available() {
        return;
    }
    let bed = Cri::start();
    let v = bed
        .call(bed.runtime().version(api::VersionRequest {
            version: "v1".into(),
        }))
        .expect("Version");
    assert_eq!(v.runtime_name, "containerd");
    assert_eq!(v.runtime_api_version, "v1");
    for handler in HANDLERS {
        let pod = bed.run_pod(handler, &format!("smoke-{handler}"));
        let c = bed.run_container(&pod, "main", "echo hello; exec sleep 1000");
        let out = bed.sh(&c, "echo $((6*7))");
        assert_eq!(out, "42\n");
        bed.remove_pod(&pod);
        bed.assert_clean(&[&pod], &[&c]);
    }
}
