import FerryCore

// GRDB also declares `TableDefinition`; in this module the name means the standard's table.
typealias TableDefinition = FerryCore.TableDefinition
