"""People and roles: users, argon2 passwords, per-user API tokens, sign-in and lock-out."""
