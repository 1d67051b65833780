"""Stage 1, the user's data: the memoryx_* variables and the inventory, read and validated item by
item (types, shapes, references), each problem naming its item and field."""
