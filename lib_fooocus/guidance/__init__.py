"""The sampling maths, exact to Fooocus and host-free: `schedule` (σ table, t(σ), progress),
`adm` (negative ADM size conditioning), `sharpness` (the anisotropic filter on the positive eps),
`cfg` (adaptive CFG and Fooocus's combine)."""
