"""What people see: human output with rich, machine output as JSON."""
