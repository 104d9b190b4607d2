using System.IO.Compression;
using System.Text;
using TransPeft.Experiments.Data.Readers;

namespace TransPeft.Engine.Tests.DataPipeline;

public class ReaderTests
{
    [Fact]
    public void MobyDick_reads_files_in_list_order_skipping_contents()
    {
        using var tmp = new TempDir();
        tmp.File("data/file_list.json", """["contents.txt", "etymology.txt", "chapter_1.txt", "chapter_2.txt"]""");
        tmp.File("data/contents.txt", "CONTENTS\n\nCHAPTER 1. Loomings.\n");
        tmp.File("data/etymology.txt", "ETYMOLOGY. (Supplied by a Late Consumptive Usher to a Grammar School.)\n\nThe pale Usher—threadbare in coat.\n");
        tmp.File("data/chapter_1.txt", "CHAPTER 1. Loomings.\r\n\r\nCall me Ishmael.\r\n\r\nSome years ago.\r\n");
        tmp.File("data/chapter_2.txt", "CHAPTER 2. The Carpet-Bag.\n\nI stuffed a shirt or two.\n");
        var chapters = MobyDickReader.Read(tmp.Path);
        Assert.Equal(["etymology", "chapter_1", "chapter_2"], chapters.Select(c => c.Name));
        Assert.Equal("CHAPTER 1. Loomings.", chapters[1].Heading);
        Assert.Equal("Call me Ishmael.\n\nSome years ago.", chapters[1].Text);
        Assert.Equal("The pale Usher—threadbare in coat.", chapters[0].Text);

        tmp.File("data/file_list.json", """["chapter_9.txt"]""");
        var e = Assert.Throws<DataFormatException>(() => MobyDickReader.Read(tmp.Path));
        Assert.Contains("file_list.json", e.Message);
        Assert.Contains("chapter_9.txt", e.Message);
    }

    [Fact]
    public void Sotu_metadata_comes_from_file_names_and_audience_reactions_are_removed()
    {
        using var tmp = new TempDir();
        tmp.File("data/1953_harry_s_truman_d.txt", "Mr. President, Mr. Speaker: I have the honor. [Applause] Thank you.");
        tmp.File("data/1953_harry_s_truman_d.json", "{}");
        tmp.File("data/1900_william_mc_kinley_r.txt", " To the Senate and House of Representatives: At the outgoing of the old century. [Laughter]");
        tmp.File("data/1797_john_adams_f.txt", "Gentlemen of the Senate.");
        var speeches = SotuReader.Read(tmp.Path);
        Assert.Equal([1797, 1900, 1953], speeches.Select(s => s.Year));
        var truman = speeches[2];
        Assert.Equal("Harry S Truman", truman.President);
        Assert.Equal("d", truman.PartyCode);
        Assert.Equal("Democratic", truman.Party);
        Assert.Equal("1953_harry_s_truman_d", truman.Key);
        Assert.Equal("Mr. President, Mr. Speaker: I have the honor. Thank you.", truman.Text);
        Assert.Equal("William Mc Kinley", speeches[1].President);
        Assert.Equal("Republican", speeches[1].Party);
        Assert.Equal("Federalist", speeches[0].Party);

        tmp.File("data/1999_someone_zz.txt", "text");
        Assert.Contains("unknown party code 'zz'", Assert.Throws<DataFormatException>(() => SotuReader.Read(tmp.Path)).Message);
        File.Delete(Path.Combine(tmp.Path, "data/1999_someone_zz.txt"));
        tmp.File("data/speech.txt", "text");
        Assert.Contains("YEAR_first_last_PARTY.txt", Assert.Throws<DataFormatException>(() => SotuReader.Read(tmp.Path)).Message);
    }

    [Fact]
    public void Fortunes_split_on_percent_lines_with_attribution_overstrike_and_index_files_skipped()
    {
        using var tmp = new TempDir();
        var dir = Path.Combine(tmp.Path, FortuneReader.FortuneFolder);
        tmp.File(Path.Combine(FortuneReader.FortuneFolder, "wisdom"),
            "\"The one charm of marriage is that it makes a life of deception a necessity.\"\n\t\t-- Oscar Wilde\n%\n" +
            "I have more humility in my little finger than you have in your whole ____\b\b\b\bBODY!\n%\n" +
            "A long quote that\nspans lines.\n\t\t-- Oscar Wilde, \"The Picture of\n\t\t   Dorian Gray\"\n%\n" +
            "Last entry without a closing percent line.\n");
        File.WriteAllBytes(Path.Combine(dir, "wisdom.dat"), [0, 0, 0, 2, 0x25, 0x08]);
        File.CreateSymbolicLink(Path.Combine(dir, "wisdom.u8"), "wisdom");
        var all = FortuneReader.Read(tmp.Path);
        Assert.Equal(4, all.Count);
        Assert.All(all, f => Assert.Equal("wisdom", f.Category));
        Assert.Equal("Oscar Wilde", all[0].Attribution);
        Assert.Equal("\"The one charm of marriage is that it makes a life of deception a necessity.\"", all[0].Quote);
        Assert.EndsWith("-- Oscar Wilde", all[0].Text);
        Assert.Equal("I have more humility in my little finger than you have in your whole BODY!", all[1].Text);
        Assert.Null(all[1].Attribution);
        Assert.Equal("Oscar Wilde, \"The Picture of Dorian Gray\"", all[2].Attribution);
        Assert.Equal("A long quote that\nspans lines.", all[2].Quote);
        Assert.Equal("Last entry without a closing percent line.", all[3].Text);
        Assert.Equal([0, 1, 2, 3], all.Select(f => f.Index));
        Assert.Equal("*and*", FortuneReader.ResolveOverstrike("*___\b\b\band*"));
    }

    private const string JargonSample = """
                                The Jargon File

   Glossary

  H

   h

   hack

   :h:

   [from SF fandom] A method of ‘marking’ common words.

   :hack:

   [very common]

   1. n. Originally, a quick job that produces what is needed, but not well.

   2. n. An incredibly good piece of work. See {hacker}.

   :/dev/null: /dev·nuhl/, n.

   A notional ‘black hole’ in any information space.

  I

   IBM

   :IBM: /I-B-M/

   Inferior But Marketable.

                             Part III. Appendices

   Table of Contents

   A. Hacker Folklore
""";

    [Fact]
    public void Jargon_entries_end_at_the_next_entry_a_letter_index_or_the_appendices()
    {
        var entries = JargonReader.ParseEntries(JargonSample);
        Assert.Equal(["h", "hack", "/dev/null", "IBM"], entries.Select(e => e.Headword));
        Assert.Equal("[from SF fandom] A method of ‘marking’ common words.", entries[0].Body);
        Assert.Contains("See hacker.", entries[1].Body);
        Assert.DoesNotContain("{", entries[1].Body);
        Assert.Equal("/dev·nuhl/, n.", entries[2].Annotation);
        Assert.Equal("A notional ‘black hole’ in any information space.", entries[2].Body); // the "  I" index is not part of it
        Assert.Equal("Inferior But Marketable.", entries[3].Body); // the appendices are not part of it
        Assert.Equal("/dev/null: /dev·nuhl/, n.\nA notional ‘black hole’ in any information space.", entries[2].ToText());

        using var tmp = new TempDir();
        var gz = Path.Combine(tmp.Path, JargonReader.JargonPath);
        Directory.CreateDirectory(Path.GetDirectoryName(gz)!);
        using (var fs = File.Create(gz))
        using (var z = new GZipStream(fs, CompressionLevel.Fastest))
            z.Write(Encoding.UTF8.GetBytes(JargonSample));
        var file = JargonReader.Read(tmp.Path);
        Assert.Equal(4, file.Entries.Count);
        Assert.Contains("Hacker Folklore", file.FullText);
    }

    private static string SpamJson(string group, string text) =>
        System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, string> { ["id"] = "00001", ["group"] = group, ["text"] = text });

    [Fact]
    public void SpamAssassin_strips_headers_and_labels_by_group()
    {
        var raw = "From x@y  Thu Aug 22 13:17:22 2002\nReturn-Path: <x@y>\nSubject: Re: New Sequences\n    Window\nContent-Type: text/plain; charset=us-ascii\n\n" +
                  "    Date:        Wed, 21 Aug 2002\n    I can't reproduce this error.\n";
        var m = SpamAssassinReader.ParseJson(Encoding.UTF8.GetBytes(SpamJson("easy-ham-1", raw)), "x.json");
        Assert.False(m.IsSpam);
        Assert.Equal("ham", m.Label);
        Assert.Equal("easy-ham-1/00001", m.Key);
        Assert.Equal("Re: New Sequences Window", m.Subject);
        Assert.Equal("Date:        Wed, 21 Aug 2002\n    I can't reproduce this error.", m.Body);
        Assert.DoesNotContain("Return-Path", m.Body);

        var spam = SpamAssassinReader.ParseJson(Encoding.UTF8.GetBytes(SpamJson("spam-2", "Subject: hi\n\nBuy now")), "y.json");
        Assert.True(spam.IsSpam);
        Assert.Equal("Buy now", spam.Body);

        var bad = Encoding.UTF8.GetBytes("""{"id": "1", "group": "spam-1"}""");
        var e = Assert.Throws<DataFormatException>(() => SpamAssassinReader.ParseJson(bad, "z.json"));
        Assert.Contains("z.json", e.Message);
        Assert.Contains("'text'", e.Message);
    }

    [Fact]
    public void Mime_bodies_are_decoded_multipart_alternative_prefers_plain_and_html_becomes_text()
    {
        var multipart =
            "Subject: =?iso-8859-1?Q?Caf=E9?=\nMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"XYZ\"\n\n" +
            "This is a multi-part message in MIME format.\n--XYZ\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\n" +
            "Caf=E9 au lait, soft=\nbreak.\n--XYZ\nContent-Type: text/html\n\n<p>ignored html</p>\n--XYZ--\nepilogue\n";
        var m = MimeBodyExtractor.Extract(multipart);
        Assert.Equal("Café", m.Subject);
        Assert.Equal("Café au lait, softbreak.", m.Body);

        var mixed =
            "Content-Type: multipart/mixed; boundary=B1\n\n--B1\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: base64\n\n" +
            Convert.ToBase64String(Encoding.UTF8.GetBytes("<html><head><style>p{}</style></head><body><p>Hello&nbsp;<b>world</b> &amp; more</p><!-- c --><br>line 2</body></html>")) +
            "\n--B1\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\nAAAA\n--B1--\n";
        Assert.Equal("Hello world & more\nline 2", MimeBodyExtractor.Extract(mixed).Body);

        // HTML sent without a Content-Type header (text/plain by default) is still HTML.
        var untyped = "Subject: x\nContent-Transfer-Encoding: quoted-printable\n\n\n<HTML>\n<BODY>\n<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.0 Transitional//EN\">\n<p>Spend less on your phone=\n bill</p></BODY></HTML>";
        Assert.Equal("Spend less on your phone bill", MimeBodyExtractor.Extract(untyped).Body);
    }

    private const string License = "  1 This software and database is being provided to you, the LICENSEE, by  \n  2 Princeton University under the following license.  \n";

    [Fact]
    public void WordNet_data_lines_give_words_and_glosses()
    {
        var line = "00001740 29 v 04 breathe 0 take_a_breath 0 respire 0 suspire 3 021 * 00005041 v 0000 * 00004227 v 0000 02 + 08 00 + 02 00 | draw air into, and expel out of, the lungs; \"I can breathe better when the air is clean\"; \"The patient is respiring\"  ";
        var s = WordNetReader.ParseDataLine(line, "data.verb", 30);
        Assert.Equal(1740, s.Offset);
        Assert.Equal('v', s.PartOfSpeech);
        Assert.Equal(["breathe", "take a breath", "respire", "suspire"], s.Words);
        Assert.Equal("draw air into, and expel out of, the lungs", s.Definition);
        Assert.Equal(["I can breathe better when the air is clean", "The patient is respiring"], s.Examples);

        var adj = WordNetReader.ParseDataLine("00001740 00 a 01 able(a) 0 005 = 05207437 n 0000 | (usually followed by `to') having the necessary means  ", "data.adj", 1);
        Assert.Equal(["able"], adj.Words);
        var many = WordNetReader.ParseDataLine("00002000 03 n 0b a 0 b 0 c 0 d 0 e 0 f 0 g 0 h 0 i 0 j 0 k 0 000 | eleven words", "data.noun", 2);
        Assert.Equal(11, many.Words.Count); // w_cnt is hexadecimal

        var e = Assert.Throws<DataFormatException>(() => WordNetReader.ParseDataLine("00001740 03 n zz entity 0 | x", "data.noun", 31));
        Assert.Contains("data.noun:31", e.Message);
        Assert.Contains("w_cnt", e.Message);

        using var tmp = new TempDir();
        var path = tmp.File("data.noun", License + "00001740 03 n 01 entity 0 000 | that which is perceived  \n");
        var synsets = WordNetReader.ReadDataFile(path);
        Assert.Single(synsets);
        Assert.Equal(("entity", "that which is perceived"), WordNetReader.WordGlossPairs(synsets).Single());
    }

    [Fact]
    public void WordNet_primary_definition_is_the_first_sense_of_the_first_part_of_speech()
    {
        using var tmp = new TempDir();
        tmp.File("usr/share/wordnet/data.noun", License +
            "00000100 05 n 01 hack 0 000 | a mediocre and disdained writer  \n" +
            "00000200 05 n 01 hack 1 000 | a horse kept for hire  \n" +
            "00000300 05 n 01 Finland 0 000 | republic in northern Europe  \n");
        tmp.File("usr/share/wordnet/index.noun", License +
            "hack n 2 0 2 0 00000200 00000100  \n" +
            "finland n 1 0 1 0 00000300  \n");
        tmp.File("usr/share/wordnet/data.verb", License + "00000400 30 v 01 hack 0 000 | cut with a hacking tool  \n");
        tmp.File("usr/share/wordnet/index.verb", License + "hack v 1 0 1 0 00000400  \n");
        tmp.File("usr/share/wordnet/data.adj", License);
        tmp.File("usr/share/wordnet/index.adj", License);
        tmp.File("usr/share/wordnet/data.adv", License);
        tmp.File("usr/share/wordnet/index.adv", License);
        var defs = WordNetReader.ReadPrimaryDefinitions(tmp.Path).ToDictionary(d => d.Word);
        Assert.Equal("a horse kept for hire", defs["hack"].Definition); // first offset in index.noun, noun before verb
        Assert.Equal("noun", defs["hack"].PartOfSpeech);
        Assert.Equal(2, defs["hack"].SenseCount);
        Assert.Equal("republic in northern Europe", defs["Finland"].Definition); // spelled as in the synset

        tmp.File("usr/share/wordnet/index.verb", License + "hack v 2 0 1 0 00000400  \n");
        var e = Assert.Throws<DataFormatException>(() => WordNetReader.ReadPrimaryDefinitions(tmp.Path));
        Assert.Contains("index.verb:3", e.Message);
    }
}
