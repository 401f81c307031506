//! Workers' reports that never reach the coordinator (its events queue unbound by hand,
//! as a purge or a broker fault would lose them): the job still ends, succeeded, once its
//! parts in storage cover the source. Before, it stayed `queued` for ever with every task
//! done (seen once in CI after a broker restart).

use std::time::Duration;

use farm_queue::Topology;
use farm_tests::amqp::{broker, is_bound};
use farm_tests::farm::{plain, Extra};

use super::{serial, Case};

#[test]
fn a_job_whose_task_reports_are_lost_ends_when_its_parts_cover_the_source() {
    let _serial = serial();
    // Quiet jobs are looked at every FARM_TASK_STALL_SECONDS.
    let extra = Extra { coordinator: vec![("FARM_TASK_STALL_SECONDS", "8".to_string())], ..Default::default() };
    let case = Case::start("fault-reports", 2, 6.0, extra);
    let topology = Topology::new(&case.farm.prefix);
    let events = format!("{}.coordinator.events", case.farm.prefix);
    let b = broker();
    assert!(b.wait_for(Duration::from_secs(60), || is_bound(&events, &topology.events_exchange())), "{}", case.farm.coordinator.log());
    b.unbind(&events, &topology.events_exchange(), "task.#").unwrap();

    let id = case.submit();
    let done = case.wait_final(&id, Duration::from_secs(240));
    let log = plain(&case.farm.coordinator.log());
    assert_eq!(done["state"], "succeeded", "{done}\n{log}");
    assert!(log.contains("their parts in storage cover the source"), "{log}");
    // No report reached it: the job was finished from storage alone.
    assert_eq!(b.depth(&events).unwrap(), 0);
    assert!(done["tasks"].as_array().is_some_and(|t| !t.is_empty() && t.iter().all(|t| t["state"] == "succeeded")), "{done}");
    case.assert_output_whole();
    case.cleanup();
}
