use std::time::Instant;
use tract_onnx::prelude::*;
fn main() -> TractResult<()> {
    let path = "model/efficientnet-lite0.onnx";
    let mut model = tract_onnx::onnx().model_for_path(path)?;
    let n = model.symbols.sym("N");
    model.set_input_fact(
        0,
        f32::fact([n.to_dim(), 3.to_dim(), 224.to_dim(), 224.to_dim()]).into(),
    )?;
    let t = Instant::now();
    let typed = model.into_typed()?.into_decluttered()?;
    println!("declutter {:?}", t.elapsed());
    for b in [1usize, 4, 8] {
        let t = Instant::now();
        let conc = typed.set_symbols(&std::collections::HashMap::from([(
            n.clone(),
            (b as i64).to_dim(),
        )]))?;
        let plan = conc.into_optimized()?.into_runnable()?;
        println!("b={b} specialise {:?}", t.elapsed());
        let input: Tensor = tract_ndarray::Array4::<f32>::zeros((b, 3, 224, 224)).into();
        plan.run(tvec!(input.clone().into()))?;
        let t = Instant::now();
        for _ in 0..3 {
            plan.run(tvec!(input.clone().into()))?;
        }
        println!("b={b} per image {:?}", t.elapsed() / 3 / b as u32);
    }
    Ok(())
}
