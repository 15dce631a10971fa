echo demo placeholder
