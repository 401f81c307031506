//! The forensic mark benchmarks' clips (1280x720, 25 fps, endless lavfi graphs): a test
//! pattern (`graphics`), a steady zoom into the Mandelbrot set (`detail`) and dark, slowly
//! moving gradients under heavy grain (`dark-grain`).

pub const CLIPS: [(&str, &str); 3] = [
    ("graphics", "testsrc2=size=1280x720:rate=25"),
    ("detail", "mandelbrot=size=1280x720:rate=25"),
    ("dark-grain", "gradients=size=1280x720:rate=25:speed=0.01:seed=1:n=2:c0=0x405070:c1=0xC0A080,eq=brightness=-0.3,noise=alls=20:allf=t+u"),
];
