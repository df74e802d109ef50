//! Arguments and plans: budgets, canonical method parameters, plan identity.

use kidbench_run::Budget;

#[test]
fn budgets_parse() {
    assert_eq!("steps=20".parse::<Budget>(), Ok(Budget::Steps(20)));
    assert_eq!("time=90".parse::<Budget>(), Ok(Budget::Time(90.0)));
    assert_eq!("time=90s".parse::<Budget>(), Ok(Budget::Time(90.0)));
    assert_eq!("time=5m".parse::<Budget>(), Ok(Budget::Time(300.0)));
    assert_eq!("time=1.5h".parse::<Budget>(), Ok(Budget::Time(5400.0)));
    for bad in [
        "time=0",
        "time=-3",
        "time=abc",
        "time=5d",
        "steps=0",
        "steps=1.5",
        "5m",
        "epochs=2",
    ] {
        assert!(bad.parse::<Budget>().is_err(), "{bad}");
    }
    assert_eq!(Budget::Time(300.0).to_string(), "time=300s");
}
