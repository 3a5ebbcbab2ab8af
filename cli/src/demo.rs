pub async fn run(_e: &beacon::local::setup::LocalEndpoints, _t: &str, _a: &str) -> anyhow::Result<()> {
    Ok(())
}
