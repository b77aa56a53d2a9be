/*
 * vector_type: which type the DNA vector columns have, checked by type OID, not by name.
 *
 * media_ids.profile_embedding must be pgvector's vector(1536) (the type named vector that the
 * vector extension owns, in whatever schema it was installed) or PostgreSQL's real[];
 * entity_dna.embedding, when it exists, must have exactly the same type and dimension. passportd
 * checks this at start-up (processor_create) and passport-migrate before it writes vectors.
 */
#ifndef PASSPORT_VECTOR_TYPE_H
#define PASSPORT_VECTOR_TYPE_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "vec.h"

struct db_error;

#define VECTOR_TYPE_NAME_MAX 256

struct vector_type {
	enum vec_format format;
	/*
	 * The type without its dimension, as the server writes it in SQL: "vector", or
	 * "extensions.vector" when its schema is not on the search path; "real[]" for arrays.
	 */
	char name[VECTOR_TYPE_NAME_MAX];
	/* The column type's OID: pgvector's vector type in this database (binary arrays name it). */
	uint32_t oid;
	/* The type's schema when it is not on the search path ("" otherwise). */
	char schema_off_path[VECTOR_TYPE_NAME_MAX];
	bool entity_dna_exists; /* entity_dna.embedding was found (and matches) */
};

/*
 * Inspect media_ids.profile_embedding and entity_dna.embedding. Returns 0 with out filled, or -1
 * with an error that names the column and its type: a missing profile_embedding, a type other
 * than vector(1536) or real[] (vector(768), say; a vector without a dimension is accepted, each
 * value's length is checked as it is read), or an entity_dna.embedding of another type.
 */
int vector_type_inspect(PGconn *conn, struct vector_type *out, struct db_error *error);

#endif
