"""The evaluation tasks: one module per task behind the interface of base.py, sharing context.py's
state; registry.py lists them in run order. The evaluate stage only assembles them."""
